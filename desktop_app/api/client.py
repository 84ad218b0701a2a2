"""HTTP client for the TokenRent server (contract: docs/contracts.md, docs/api.md).

Blocking calls: run them on a worker thread (desktop_app.api.worker), never
on the UI thread. Every answer comes back typed (desktop_app.api.replies), read
as the server wrote it; every failure becomes an ApiError whose ``user_message``
is a sentence a user understands; the UI never shows a traceback.
"""
from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING, Any
from collections.abc import Iterable

from desktop_app.api.tls import ca_verify
from desktop_app.api.replies import (Account, Category, Declined, Device, Exchange, ExchangeQuote, GiftGiven, Ledger,
                                     License, LicenseCode, Mall, MallAssertion, Me, OpenActivityLine, OpenShort,
                                     OpenTokenOffers, OpenTokenPurchase, OpenWallet, OrderList, OrderPayment, Product,
                                     Quote, Receipt, Redeemed, Session, Shortage, TokenOffers, TokenPurchase, Transfer,
                                     VendorKey)
from desktop_app.wire import ReplyError, parse

if TYPE_CHECKING:
    import requests

DEFAULT_TIMEOUT = 15.0


class ApiError(Exception):
    """A request failed. ``user_message`` is safe to show as is; ``body`` is the server's
    error body (``{"detail": ...}`` and the extra members of that error)."""

    def __init__(self, user_message: str, status: int | None = None, body: dict | None = None):
        super().__init__(user_message)
        self.user_message = user_message
        self.status = status
        self.body = body or {}

    @property
    def answer_lost(self) -> bool:
        """No decision reached us: the request may or may not have run (off-line, a timeout,
        a 5xx). Trying again must send the SAME Idempotency-Key, so it runs at most once."""
        return self.status is None or self.status >= 500

    @property
    def needs_new_key(self) -> bool:
        """The server decided and refused (402 short of tokens, a declined card, 403 wrong PIN,
        404, 422 ...). That answer is final for its Idempotency-Key: a retry with the same key
        gets it again, forever. The user's next try is a new request with a NEW key.

        409 is such a refusal too (the server makes a request whose key is still in use wait
        for the first one and replays its answer; it never answers 409 for that). Not after a
        lost answer (see answer_lost), nor after 401 (sign in again and the same request goes
        on) or 429 (refused before it ran; nothing stored)."""
        return not self.answer_lost and self.status not in (401, 429)


class NetworkError(ApiError):
    """The server could not be reached: the app is off-line."""


class AnswerNotUnderstood(ApiError):
    """The server answered in a shape that is not the contract. Whatever it did stands (an
    order may be placed): the same key must be sent again, never a new one."""

    @property
    def needs_new_key(self) -> bool:
        return False


def needs_new_key(error: Exception) -> bool:
    """After this failure, does the user's next try need a new Idempotency-Key?"""
    return isinstance(error, ApiError) and error.needs_new_key


def answer_lost(error: Exception) -> bool:
    """Did this failure leave us without the server's decision? (see ApiError.answer_lost)"""
    return not isinstance(error, ApiError) or error.answer_lost


class SessionExpired(ApiError):
    """The session token is missing, expired or revoked: sign in again."""


class ShortOfTokens(ApiError):
    """402 on an order: the server's Shortage (required, available, shortage in tokens)."""

    def __init__(self, user_message: str, status: int, body: dict, shortage: Shortage):
        super().__init__(user_message, status, body)
        self.shortage = shortage


class ShortOfOpenTokens(ApiError):
    """402 on an order paid in open tokens: the MSP's plan was short (``short_units``) and
    ``helpful_kinds`` are the kinds that would pay these lines (FIG 20, the shortage dialog)."""

    def __init__(self, user_message: str, status: int, body: dict, short: OpenShort):
        super().__init__(user_message, status, body)
        self.short = short


class CardDeclined(ApiError):
    """402 on a card purchase: the server's Declined (its decline code, the purchase id)."""

    def __init__(self, user_message: str, status: int, body: dict, declined: Declined):
        super().__init__(user_message, status, body)
        self.declined = declined


_STATUS_TEXT = {
    400: "The server did not accept the request.",
    403: "You are not allowed to do that.",
    404: "Not found.",
    409: "That conflicts with the current state; please refresh and try again.",
    422: "Some of the input is not valid.",
    423: "This account is locked for a while after too many failed sign-ins.",
    429: "Too many requests; please wait a moment.",
}


class ApiClient:
    """Thread-safe: one requests.Session per thread, the token shared."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._local = threading.local()

    # -- plumbing ---------------------------------------------------------
    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            import requests   # imported on first use, on a worker thread: a faster start
            s = self._local.session = requests.Session()
        return s

    def url(self, path: str) -> str:
        if path.startswith("http://") or path.startswith("https://"):
            return path
        if not path.startswith("/v1") and not path.startswith("/"):
            path = "/" + path
        return self.base_url + path

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                idempotency_key: str | None = None, auth: bool = True, shape: Any = None) -> Any:
        """The answer as ``shape`` (a reply type), or the decoded JSON when no shape is given."""
        headers = self.auth_headers() if auth else {}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        session = self._session()
        import requests
        try:
            resp = session.request(method, self.url(path), json=json, params=params,
                                           headers=headers, timeout=self.timeout, verify=ca_verify())
        except requests.Timeout as exc:
            raise NetworkError("The server did not answer in time. Check your connection and try again.") from exc
        except requests.RequestException as exc:
            raise NetworkError(f"Cannot reach the server at {self.base_url}. You are off-line.") from exc
        body = self._answer(resp, auth)
        if shape is None:
            return body
        try:
            return parse(shape, body, f"{method} {path}")
        except ReplyError as exc:
            raise AnswerNotUnderstood(exc.user_message, resp.status_code, {"detail": str(exc)}) from exc

    def _answer(self, resp: requests.Response, auth: bool) -> Any:
        try:
            body = resp.json() if resp.content else {}
        except ValueError:
            body = {}
        if resp.status_code < 400:
            return body
        if not isinstance(body, dict):
            body = {}
        detail = body.get("detail") if isinstance(body.get("detail"), str) else ""
        status = resp.status_code
        if status == 401:
            if auth and self.token:
                raise SessionExpired("Your session has ended. Please sign in again.", status, body)
            raise ApiError(detail or "Wrong username or password.", status, body)
        if status == 402:
            # the 402s of the API: short of open tokens (the MSP's plan), short of tokens (an
            # order: FIG 8's numbers), a declined card
            if "short_units" in body:
                try:
                    short = parse(OpenShort, body, "402 problem")
                except ReplyError as exc:
                    raise AnswerNotUnderstood(exc.user_message, status, body) from exc
                raise ShortOfOpenTokens(detail or "You do not have enough open tokens for this order.", status,
                                        body, short)
            if "shortage" in body:
                try:
                    shortage = parse(Shortage, body, "402 problem")
                except ReplyError as exc:
                    raise AnswerNotUnderstood(exc.user_message, status, body) from exc
                raise ShortOfTokens(detail or "You do not have enough tokens for this order.", status, body,
                                    shortage)
            try:
                declined = parse(Declined, body, "402 problem")
            except ReplyError as exc:
                raise AnswerNotUnderstood(exc.user_message, status, body) from exc
            raise CardDeclined(detail or "The card was declined.", status, body, declined)
        if status >= 500:
            raise ApiError("The server had a problem. Please try again later.", status, body)
        raise ApiError(detail or _STATUS_TEXT.get(status, f"The request failed ({status})."), status, body)

    # -- accounts and sessions -------------------------------------------
    def register(self, username: str, password: str, pin: str, full_name: str, email: str,
                 address: str = "", phone: str = "") -> Account:
        body = {"username": username, "password": password, "pin": pin,
                "full_name": full_name, "email": email}
        if address:
            body["address"] = address
        if phone:
            body["phone"] = phone
        return self.request("POST", "/v1/accounts", json=body, auth=False, shape=Account)

    def sign_in(self, username: str, password: str) -> Session:
        answer = self.request("POST", "/v1/sessions", json={"username": username, "password": password},
                              auth=False, shape=Session)
        self.token = answer.token
        return answer

    def sign_out(self) -> None:
        self.request("DELETE", "/v1/sessions/current")

    def me(self) -> Me:
        return self.request("GET", "/v1/me", shape=Me)

    # -- tokens -----------------------------------------------------------
    def token_offers(self) -> TokenOffers:
        return self.request("GET", "/v1/token-offers", auth=False, shape=TokenOffers)

    def buy_tokens(self, *, method: str, tokens: int | None = None, bundle_id: int | None = None,
                   card: dict | None = None, idempotency_key: str) -> TokenPurchase:
        body: dict[str, Any] = {"method": method}
        if bundle_id is not None:
            body["bundle_id"] = bundle_id
        else:
            body["tokens"] = tokens
        if card:
            body.update(card)
        return self.request("POST", "/v1/token-purchases", json=body, idempotency_key=idempotency_key,
                            shape=TokenPurchase)

    def token_purchases(self) -> list[TokenPurchase]:
        return self.request("GET", "/v1/token-purchases", shape=list[TokenPurchase])

    def transfer(self, to_username: str, to_full_name: str, tokens: int, pin: str,
                 idempotency_key: str) -> Transfer:
        return self.request("POST", "/v1/transfers",
                            json={"to_username": to_username, "to_full_name": to_full_name,
                                  "tokens": tokens, "pin": pin},
                            idempotency_key=idempotency_key, shape=Transfer)

    def ledger(self) -> Ledger:
        return self.request("GET", "/v1/ledger", shape=Ledger)

    # -- catalog ----------------------------------------------------------
    def categories(self) -> list[Category]:
        return self.request("GET", "/v1/categories", auth=False, shape=list[Category])

    def products(self, category_id: int | None = None) -> list[Product]:
        params = {"category_id": category_id} if category_id is not None else None
        return self.request("GET", "/v1/products", params=params, auth=False, shape=list[Product])

    # -- orders -----------------------------------------------------------
    def quote(self, items: list[dict], payment: str = OrderPayment.CLOSED) -> Quote:
        body: dict[str, Any] = {"items": items}
        if payment != OrderPayment.CLOSED:
            body["payment"] = str(payment)      # closed is the default: an older server is asked as before
        return self.request("POST", "/v1/quotes", json=body, shape=Quote)

    def place_order(self, items: list[dict], device_id: str | None,
                    installed_product_ids: Iterable[int], idempotency_key: str,
                    payment: str = OrderPayment.CLOSED, wait_seconds: float = 60.0) -> Receipt:
        """The receipt. An order paid in open tokens may answer 202 (pending: the MSP has not
        answered within the store's wait); then the order is read again, each read waiting on
        the server, until it is final or ``wait_seconds`` have passed (still pending then: the
        store's worker finishes it, and the order list shows it)."""
        body: dict[str, Any] = {"items": items, "device_id": device_id,
                                "installed_product_ids": list(installed_product_ids)}
        if payment != OrderPayment.CLOSED:
            body["payment"] = str(payment)
        receipt = self.request("POST", "/v1/orders", idempotency_key=idempotency_key, json=body, shape=Receipt)
        import time
        deadline = time.monotonic() + wait_seconds
        while receipt.pending and time.monotonic() < deadline:
            receipt = self.order(receipt.id, wait=min(10.0, max(1.0, deadline - time.monotonic())))
        return receipt

    def order(self, order_id: int, wait: float | None = None) -> Receipt:
        """GET /v1/orders/{id}; ``wait``: the server holds the answer up to that many seconds
        for a pending order to become final."""
        params = {"wait": f"{wait:g}"} if wait else None
        return self.request("GET", f"/v1/orders/{order_id}", params=params, shape=Receipt)

    def orders(self) -> list[Receipt]:
        return self.request("GET", "/v1/orders", shape=list[Receipt])

    def get_order_list(self) -> OrderList:
        return self.request("GET", "/v1/order-list", shape=OrderList)

    def put_order_list(self, items: list[dict]) -> OrderList:
        return self.request("PUT", "/v1/order-list", json={"items": items}, shape=OrderList)

    # -- licenses and devices -------------------------------------------
    def licenses(self) -> list[License]:
        return self.request("GET", "/v1/licenses", shape=list[License])

    def license_code(self, license_id: int, device_id: str) -> LicenseCode:
        return self.request("GET", f"/v1/licenses/{license_id}/code", params={"device_id": device_id},
                            shape=LicenseCode)

    def register_device(self, public_key_b64: str, name: str) -> Device:
        return self.request("POST", "/v1/devices", json={"public_key": public_key_b64, "name": name},
                            shape=Device)

    def vendor_key(self) -> VendorKey:
        return self.request("GET", "/v1/vendor-key", auth=False, shape=VendorKey)

    # -- the mall network (docs/mall.md) --------------------------------------
    def mall(self) -> Mall:
        return self.request("GET", "/v1/mall", auth=False, shape=Mall)

    def exchange_quote(self, to_member: str, tokens: int) -> ExchangeQuote:
        return self.request("POST", "/v1/exchange-quotes", json={"to_member": to_member, "tokens": tokens},
                            shape=ExchangeQuote)

    def confirm_exchange(self, quote_id: str, idempotency_key: str) -> Exchange:
        return self.request("POST", "/v1/exchanges", json={"quote_id": quote_id},
                            idempotency_key=idempotency_key, shape=Exchange)

    def exchanges(self) -> list[Exchange]:
        return self.request("GET", "/v1/exchanges", shape=list[Exchange])

    def exchange(self, exchange_id: str) -> Exchange:
        return self.request("GET", f"/v1/exchanges/{exchange_id}", shape=Exchange)

    def mall_assertion(self, audience: str) -> MallAssertion:
        return self.request("POST", "/v1/mall-assertions", json={"audience": audience}, shape=MallAssertion)

    def sign_in_with_assertion(self, assertion: str) -> Session:
        """At another member: a session for the user's linked account there, no password."""
        answer = self.request("POST", "/v1/sessions", json={"assertion": assertion}, auth=False, shape=Session)
        self.token = answer.token
        return answer

    # -- open tokens (issue 12): at the home store ------------------------------
    def open_token_offers(self) -> OpenTokenOffers:
        return self.request("GET", "/v1/open-token-offers", auth=False, shape=OpenTokenOffers)

    def buy_open_tokens(self, *, kind: str, method: str, pin: str, idempotency_key: str,
                        tokens: int | None = None, value_cents: int | None = None, issuer: str | None = None,
                        card: dict | None = None, recipient: dict | None = None) -> OpenTokenPurchase:
        """Open tokens of a kind (``tokens``), or a gift certificate (``value_cents``, and a
        ``recipient`` {username, full_name} when it is for someone else)."""
        body: dict[str, Any] = {"kind": kind, "method": method, "pin": pin}
        for name, value in (("tokens", tokens), ("value_cents", value_cents), ("issuer", issuer),
                            ("recipient", recipient)):
            if value is not None:
                body[name] = value
        if card:
            body.update(card)
        return self.request("POST", "/v1/open-token-purchases", json=body, idempotency_key=idempotency_key,
                            shape=OpenTokenPurchase)

    def open_token_purchases(self) -> list[OpenTokenPurchase]:
        return self.request("GET", "/v1/open-token-purchases", shape=list[OpenTokenPurchase])

    def give_gift_certificate(self, operation_id: str, username: str, full_name: str, pin: str,
                              idempotency_key: str) -> GiftGiven:
        return self.request("POST", f"/v1/gift-certificates/{operation_id}/give",
                            json={"username": username, "full_name": full_name, "pin": pin},
                            idempotency_key=idempotency_key, shape=GiftGiven)

    # -- open tokens: at the MSP (a client of the MSP's URL with an MSP session) -----
    def open_wallet(self) -> OpenWallet:
        return self.request("GET", "/v1/open-wallet", shape=OpenWallet)

    def open_activity(self, limit: int = 200, before: str | None = None) -> list[OpenActivityLine]:
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        return self.request("GET", "/v1/open-wallet/activity", params=params, shape=list[OpenActivityLine])

    def redeem_gift_certificate(self, code: str) -> Redeemed:
        return self.request("POST", "/v1/open-wallet/redeem", json={"code": code}, shape=Redeemed)

    def ping(self) -> bool:
        try:
            self.request("GET", "/v1/categories", auth=False)
            return True
        except NetworkError:
            return False


def new_idempotency_key() -> str:
    return str(uuid.uuid4())
