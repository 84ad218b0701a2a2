"""HTTP client for the TokenRent server (contract: /work/shared/DESIGN.md).

Blocking calls: run them on a worker thread (desktop_app.api.worker), never
on the UI thread. Every failure becomes an ApiError whose ``user_message`` is
a sentence a user understands; the UI never shows a traceback.
"""
from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    import requests

DEFAULT_TIMEOUT = 15.0


class ApiError(Exception):
    """A request failed. ``user_message`` is safe to show as is."""

    def __init__(self, user_message: str, status: int | None = None, body: dict | None = None):
        super().__init__(user_message)
        self.user_message = user_message
        self.status = status
        self.body = body or {}


class NetworkError(ApiError):
    """The server could not be reached: the app is off-line."""


class SessionExpired(ApiError):
    """The session token is missing, expired or revoked: sign in again."""


class ShortOfTokens(ApiError):
    """402 on an order: ``required``, ``available``, ``shortage`` in tokens."""

    @property
    def required(self) -> int:
        return int(self.body.get("required_tokens", 0))

    @property
    def available(self) -> int:
        return int(self.body.get("available_tokens", 0))

    @property
    def shortage(self) -> int:
        return int(self.body.get("shortage", self.required - self.available))


class CardDeclined(ApiError):
    pass


def _detail_text(body: Any) -> str:
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list):  # FastAPI validation errors
            parts = []
            for err in detail:
                if isinstance(err, dict):
                    loc = ".".join(str(p) for p in err.get("loc", [])[1:]) or "input"
                    parts.append(f"{loc}: {err.get('msg', 'invalid')}")
            if parts:
                return "; ".join(parts)
    return ""


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
    def _session(self) -> "requests.Session":
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
                idempotency_key: str | None = None, auth: bool = True) -> Any:
        headers = self.auth_headers() if auth else {}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        session = self._session()
        import requests
        try:
            resp = session.request(method, self.url(path), json=json, params=params,
                                           headers=headers, timeout=self.timeout)
        except requests.Timeout as exc:
            raise NetworkError("The server did not answer in time. Check your connection and try again.") from exc
        except requests.RequestException as exc:
            raise NetworkError(f"Cannot reach the server at {self.base_url}. You are off-line.") from exc
        return self._answer(resp, auth)

    def _answer(self, resp: "requests.Response", auth: bool) -> Any:
        try:
            body = resp.json() if resp.content else {}
        except ValueError:
            body = {}
        if resp.status_code < 400:
            return body
        detail = _detail_text(body)
        status = resp.status_code
        if status == 401:
            if auth and self.token:
                raise SessionExpired("Your session has ended. Please sign in again.", status, body)
            raise ApiError(detail or "Wrong username or password.", status, body)
        if status == 402:
            if "shortage" in body or "required_tokens" in body:
                raise ShortOfTokens(detail or "You do not have enough tokens for this order.", status, body)
            raise CardDeclined(detail or "The card was declined.", status, body)
        if status >= 500:
            raise ApiError("The server had a problem. Please try again later.", status, body)
        raise ApiError(detail or _STATUS_TEXT.get(status, f"The request failed ({status})."), status, body)

    # -- accounts and sessions -------------------------------------------
    def register(self, username: str, password: str, pin: str, full_name: str, email: str,
                 address: str = "", phone: str = "") -> dict:
        body = {"username": username, "password": password, "pin": pin,
                "full_name": full_name, "email": email}
        if address:
            body["address"] = address
        if phone:
            body["phone"] = phone
        return self.request("POST", "/v1/accounts", json=body, auth=False)

    def sign_in(self, username: str, password: str) -> dict:
        answer = self.request("POST", "/v1/sessions", json={"username": username, "password": password},
                              auth=False)
        self.token = answer["token"]
        return answer

    def sign_out(self) -> None:
        self.request("DELETE", "/v1/sessions/current")

    def me(self) -> dict:
        return self.request("GET", "/v1/me")

    # -- tokens -----------------------------------------------------------
    def token_offers(self) -> dict:
        return self.request("GET", "/v1/token-offers", auth=False)

    def buy_tokens(self, *, method: str, tokens: int | None = None, bundle_id: Any = None,
                   card: dict | None = None, idempotency_key: str | None = None) -> dict:
        body: dict[str, Any] = {"method": method}
        if bundle_id is not None:
            body["bundle_id"] = bundle_id
        else:
            body["tokens"] = tokens
        if card:
            body.update(card)
        return self.request("POST", "/v1/token-purchases", json=body,
                            idempotency_key=idempotency_key or new_idempotency_key())

    def token_purchases(self) -> list[dict]:
        return self.request("GET", "/v1/token-purchases")

    def transfer(self, to_username: str, to_full_name: str, tokens: int, pin: str,
                 idempotency_key: str | None = None) -> dict:
        return self.request("POST", "/v1/transfers",
                            json={"to_username": to_username, "to_full_name": to_full_name,
                                  "tokens": tokens, "pin": pin},
                            idempotency_key=idempotency_key or new_idempotency_key())

    def ledger(self) -> Any:
        return self.request("GET", "/v1/ledger")

    # -- catalog ----------------------------------------------------------
    def categories(self) -> list[dict]:
        return self.request("GET", "/v1/categories", auth=False)

    def products(self, category_id: Any = None) -> list[dict]:
        params = {"category_id": category_id} if category_id is not None else None
        return self.request("GET", "/v1/products", params=params, auth=False)

    # -- orders -----------------------------------------------------------
    def quote(self, items: list[dict]) -> dict:
        return self.request("POST", "/v1/quotes", json={"items": items})

    def place_order(self, items: list[dict], device_id: str | None,
                    installed_product_ids: Iterable[Any], idempotency_key: str) -> dict:
        return self.request("POST", "/v1/orders", idempotency_key=idempotency_key,
                            json={"items": items, "device_id": device_id,
                                  "installed_product_ids": list(installed_product_ids)})

    def get_order_list(self) -> dict:
        return self.request("GET", "/v1/order-list")

    def put_order_list(self, items: list[dict]) -> dict:
        return self.request("PUT", "/v1/order-list", json={"items": items})

    # -- licenses and devices -------------------------------------------
    def licenses(self) -> list[dict]:
        answer = self.request("GET", "/v1/licenses")
        return answer.get("licenses", answer.get("items", [])) if isinstance(answer, dict) else answer

    def license_code(self, license_id: Any, device_id: str) -> dict:
        return self.request("GET", f"/v1/licenses/{license_id}/code", params={"device_id": device_id})

    def register_device(self, public_key_b64: str, name: str) -> dict:
        return self.request("POST", "/v1/devices", json={"public_key": public_key_b64, "name": name})

    def vendor_key(self) -> dict:
        return self.request("GET", "/v1/vendor-key", auth=False)

    def ping(self) -> bool:
        try:
            self.request("GET", "/v1/categories", auth=False)
            return True
        except NetworkError:
            return False


def new_idempotency_key() -> str:
    return str(uuid.uuid4())
