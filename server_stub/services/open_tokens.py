"""Selling open tokens at a member (issue 12; docs/mall.md "Selling open tokens
at a member"): the offers read from the MSP's open catalog, purchases of open
tokens and gift certificates paid like token purchases (card, or off-line until
the operator confirms), then issued by the MSP through the outbox (`open.issue`),
and gifts of a certificate later (`open.gift`).

The tokens live at the MSP, never in this vendor's ledger: a purchase row is
this vendor's record of what it sold and was paid for the network. Prices and
asset names are the pure rules' (network/open_money.py); this module only
decides who may buy what here, takes the money and queues the message.
"""
from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.config import get_settings
from ..db import read_session
from ..models.base import utcnow
from ..models.mall import MallLink, MallOutboxMessage
from ..models.open_tokens import OpenTokenPurchase
from ..models.user import User
from ..network import outbox
from ..network.client import MallClient
from ..network.directory import MSP_ID
from ..network.money import BASIS_POINTS
from ..network.open_money import OpenKind, OpenMoneyError, gift_code, gift_code_digest, sale_price_cents
from ..network.types import Answer, Unreachable
from ..vocabulary import OFFLINE_METHODS, PaymentMethod, Role
from . import ledger, mall
from .accounts import check_pin
from .cards import charge_reference, parse_card, processor
from .errors import ApiError, CardDeclined, Conflict, Forbidden, Invalid, NotFound
from .idempotency import KeepsWrites, Outcome
from .pricing import policy
from .wallet import count_card_result, refuse_if_card_locked, same_name

CATALOG_PATH = "/v1/mall/open-catalog"
ISSUES_PATH = "/v1/mall/open-issues"
GIFTS_PATH = "/v1/mall/open-gifts"
# how long a request waits for the MSP's answer before it answers `pending` (the worker goes on)
DELIVER_WAIT_SECONDS = 5.0
MAX_OPEN_TOKENS = 1_000_000
MAX_GIFT_VALUE_CENTS = 1_000_000          # $10,000
MAX_GIFT_DAYS = 5 * 365                   # the MSP refuses an expiry more than 5 years away
DEFAULT_GIFT_DAYS = 365


class OpenPurchaseStatus(StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"   # off-line: until the operator confirms the payment
    PENDING = "pending"                     # paid; `open.issue` queued, the MSP has not answered yet
    ISSUED = "issued"                       # the MSP issued the lots (its answer is kept)
    FAILED = "failed"                       # the MSP refused after payment: the money is due back
    CANCELLED = "cancelled"                 # never paid, or (after failed) refunded by the operator
    DECLINED = "declined"                   # the card was declined: nothing was sold


class GiveStatus(StrEnum):
    PENDING = "pending"
    GIVEN = "given"
    REFUSED = "refused"


class OpenMessageKind(StrEnum):
    """What this module sends the MSP (the outbox's `kind` picks the answer's handler)."""

    ISSUE = "open.issue"
    GIFT = "open.gift"


# kinds a member sells (type 2 tokens are given by the brand's member or the operator, never sold)
SOLD_KINDS = (OpenKind.UNIVERSAL, OpenKind.MANUFACTURER, OpenKind.GROUP, OpenKind.GIFT_CERTIFICATE)


@dataclass(frozen=True)
class Network:
    """What this module needs of the mall saga, which connects it at import (as
    mall_notices' waker): the saga imports this module for its answer handlers."""

    client: Callable[[], MallClient]
    network_key: Callable[[], Ed25519PrivateKey]
    deliver_now: Callable[[str, float], Answer | None]


_network: Network | None = None


def connect(network: Network) -> None:
    global _network
    _network = network


def _net() -> Network:
    if _network is None:
        raise RuntimeError("the mall saga is not imported: the open-token sales have no network")
    return _network


class MspUnreachable(ApiError):
    """503: the MSP did not answer (nothing was sold; try again later)."""

    status_code = 503

    def __init__(self, detail: str) -> None:
        super().__init__(detail, reason="msp_unreachable")


class DeclinedOpenPurchase(KeepsWrites, CardDeclined):
    """402: the declined purchase and the decline count are kept (FIG 3 step 115)."""

    def __init__(self, purchase: OpenTokenPurchase, decline_code: str) -> None:
        detail = "card declined: insufficient funds" if decline_code == "insufficient_funds" else "card declined"
        super().__init__(detail, decline_code=decline_code, id=purchase.id,
                         purchase_status=OpenPurchaseStatus.DECLINED)


# ---------------------------------------------------------------- the MSP's open catalog

@dataclass(frozen=True)
class Catalog:
    """The parts of `GET /v1/mall/open-catalog` a seller needs."""

    unit_value_cents: int
    brands: dict[str, tuple[str, int]]               # brand id -> (name, discount_bp)
    groups: dict[str, tuple[frozenset[str], int]]    # group name -> (its members, discount_bp)
    max_gift_days: int

    @classmethod
    def parse(cls, body: Any) -> Catalog:
        try:
            unit = int(body["unit_value_cents"])
            brands = {str(b["brand_id"]): (str(b.get("name") or b["brand_id"]), int(b.get("discount_bp", 0)))
                      for b in body.get("brands", [])}
            groups = {str(g["name"]): (frozenset(str(m) for m in g.get("members", [])), int(g.get("discount_bp", 0)))
                      for g in body.get("groups", [])}
            max_days = int((body.get("gift_certificate") or {}).get("max_days", MAX_GIFT_DAYS))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise MspUnreachable("the MSP's open catalog is malformed") from None
        if unit < 1:
            raise MspUnreachable("the MSP's open catalog has no unit value")
        return cls(unit, brands, groups, max_days)


_catalog: tuple[float, Catalog] | None = None
_catalog_lock = threading.Lock()


def catalog() -> Catalog:
    """The MSP's open catalog, read at most once a minute per process (outside any
    transaction; settings.open_catalog_max_age_seconds). Not in a mall: 409; the MSP
    does not answer: 503 `msp_unreachable`."""
    global _catalog
    with _catalog_lock:
        cached = _catalog
    if cached is not None and time.monotonic() - cached[0] < get_settings().open_catalog_max_age_seconds:
        return cached[1]
    with read_session() as db:
        row = mall.membership(db)
        if row is None:
            raise mall.NotInMall()
        url = row.msp_url + CATALOG_PATH
    try:
        answer = _net().client().send("GET", url)
    except Unreachable as e:
        raise MspUnreachable(f"the MSP did not answer: {str(e)[:200]}") from None
    if answer.status != 200:
        raise MspUnreachable(f"the MSP answered {answer.status} for its open catalog")
    parsed = Catalog.parse(answer.body)
    with _catalog_lock:
        _catalog = (time.monotonic(), parsed)
    return parsed


def forget_catalog() -> None:
    global _catalog
    with _catalog_lock:
        _catalog = None


def gift_certificate_days(db: Session, cat: Catalog | None) -> int:
    """The vendor's expiry of the certificates it sells, never past the MSP's limit."""
    limit = MAX_GIFT_DAYS if cat is None else min(cat.max_gift_days, MAX_GIFT_DAYS)
    return max(1, min(policy(db).gift_certificate_days, limit))


def offers(db: Session, cat: Catalog, member_id: str) -> dict[str, Any]:
    """GET /v1/open-token-offers: what this member sells, at the MSP's prices."""
    def kind(k: OpenKind, issuer: str | None, name: str, discount_bp: int) -> dict[str, Any]:
        return {"kind": k, "issuer": issuer, "issuer_name": name, "discount_bp": discount_bp,
                "price_cents_per_1000": sale_price_cents(1000, cat.unit_value_cents, discount_bp)}

    # a kind at 100 % off is given, not sold: it is not offered
    kinds = [kind(OpenKind.UNIVERSAL, None, "Universal", 0)]
    kinds += [kind(OpenKind.MANUFACTURER, b, name, bp) for b, (name, bp) in sorted(cat.brands.items())
              if bp < BASIS_POINTS]
    kinds += [kind(OpenKind.GROUP, g, g, bp) for g, (members, bp) in sorted(cat.groups.items())
              if member_id in members and bp < BASIS_POINTS]
    return {"unit_value_cents": cat.unit_value_cents, "kinds": kinds,
            "gift_certificate": {"expires_in_days": gift_certificate_days(db, cat)}}


def set_gift_certificate_days(db: Session, days: int) -> int:
    if not 1 <= days <= MAX_GIFT_DAYS:
        raise Invalid(f"gift certificate days must be between 1 and {MAX_GIFT_DAYS}")
    p = policy(db)
    p.gift_certificate_days, p.updated_at = days, utcnow()
    db.flush()
    return days


def _price(cat: Catalog, member_id: str, kind: OpenKind, issuer: str | None, tokens: int) -> tuple[str | None, int]:
    """(the lot's issuer, the price in cents) of `tokens` of a kind sold here; the
    MSP checks the same price (open_money.sale_price_cents with the kind's discount)."""
    discount = 0
    if kind == OpenKind.UNIVERSAL:
        if issuer:
            raise Invalid("universal tokens have no issuer")
    elif kind == OpenKind.MANUFACTURER:
        if not issuer or issuer not in cat.brands:
            raise Invalid("issuer: no such brand in the mall's open catalog")
        discount = cat.brands[issuer][1]
    elif kind == OpenKind.GROUP:
        if not issuer or issuer not in cat.groups:
            raise Invalid("issuer: no such group in the mall's open catalog")
        if member_id not in cat.groups[issuer][0]:
            raise Forbidden(f"this store is not in group {issuer}: it cannot sell its tokens")
        discount = cat.groups[issuer][1]
    elif kind == OpenKind.GIFT_CERTIFICATE:
        if issuer not in (None, member_id):
            raise Invalid("a gift certificate is issued by the member that sells it")
        issuer = member_id
    else:
        raise Invalid("manufacturer_free tokens are given by the brand, not sold")
    if not 0 <= discount <= BASIS_POINTS:
        raise MspUnreachable("the MSP's open catalog has a discount out of range")
    try:
        return issuer, sale_price_cents(tokens, cat.unit_value_cents, discount)
    except OpenMoneyError as e:
        raise Invalid(str(e)) from None


# ---------------------------------------------------------------- who buys, who receives

@functools.cache
def gift_secret() -> bytes:
    """The secret gift codes are derived with (open_money.gift_code): from this
    store's network key, never stored, so only this store can show a code again."""
    raw = _net().network_key().private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                             serialization.NoEncryption())
    return hashlib.sha256(b"tokenrent gift-certificate codes\n" + raw).digest()


def _customer(member_id: str, user: User) -> dict[str, str]:
    return {"home_member": member_id, "home_user_id": str(user.id), "full_name": user.full_name}


def _is_linked(db: Session, user_id: int) -> bool:
    return db.scalar(select(MallLink.user_id).where(MallLink.user_id == user_id)) is not None


def _recipient(db: Session, buyer: User, username: str, full_name: str) -> User:
    """A user of THIS store, named as FIG 11 transfers name one (username and full name)."""
    found = db.scalar(select(User).where(User.username == username))
    if (found is None or found.role != Role.USER or _is_linked(db, found.id)
            or not same_name(found.full_name, full_name)):
        raise NotFound("no user with that username and full name")
    if found.id == buyer.id:
        raise Invalid("a certificate for yourself needs no recipient")
    return found


def _buyer(db: Session, user_id: int, pin_verified: bool) -> User:
    user = ledger.lock_wallets(db, user_id)[user_id]   # the PIN counters as locked
    if _is_linked(db, user.id):   # before the PIN: a linked account has none to get wrong
        raise Forbidden("open tokens are sold by your home member: buy them there")
    check_pin(user, pin_verified)
    return user


# ---------------------------------------------------------------- purchases

def buy(db: Session, user_id: int, *, cat: Catalog | None, member_id: str, kind: str, tokens: int | None,
        value_cents: int | None, issuer: str | None, method: str, recipient: dict[str, str] | None,
        pin_verified: bool, card_number: str | None = None, card_expiry: str | None = None,
        card_cvc: str | None = None) -> Outcome:
    """POST /v1/open-token-purchases, in run_idempotent's transaction. Card: charged,
    then the purchase (`pending`) and its `open.issue` message in this transaction
    (201); off-line: `awaiting_payment` (202) until the operator confirms it."""
    user = _buyer(db, user_id, pin_verified)
    if cat is None:
        raise MspUnreachable("the MSP's open catalog could not be read: nothing was sold")
    k = OpenKind(kind)
    if k == OpenKind.GIFT_CERTIFICATE:
        if value_cents is None or tokens is not None:
            raise Invalid("a gift certificate is bought by value_cents (and no tokens)")
        if value_cents % cat.unit_value_cents:
            raise Invalid(f"value_cents must be a multiple of the open unit ({cat.unit_value_cents} cents)")
        tokens = value_cents // cat.unit_value_cents
    elif tokens is None or value_cents is not None:
        raise Invalid("open tokens are bought by tokens (value_cents is for gift certificates)")
    elif recipient is not None:
        raise Invalid("only a gift certificate has a recipient")
    if not 1 <= tokens <= MAX_OPEN_TOKENS:
        raise Invalid(f"tokens must be between 1 and {MAX_OPEN_TOKENS}")
    lot_issuer, price = _price(cat, member_id, k, issuer, tokens)
    if price == 0:
        raise Invalid("these tokens are free at the MSP's discount: they are given, not sold")
    to = _recipient(db, user, recipient["username"], recipient["full_name"]) if recipient else None
    p = OpenTokenPurchase(operation_id=str(uuid.uuid4()), user_id=user.id, kind=k, issuer=lot_issuer, tokens=tokens,
                          price_cents=price, method=method, status=OpenPurchaseStatus.AWAITING_PAYMENT, reason="",
                          recipient_username=to.username if to else None,
                          recipient_full_name=to.full_name if to else None, answer_json="",
                          give_status=GiveStatus.GIVEN if to else "", give_reason="")
    if method == PaymentMethod.CARD:
        refuse_if_card_locked(user)
        card = parse_card(card_number or "", card_expiry or "", card_cvc or "")
        p.card_brand, p.card_last4 = card.brand, card.last4
        db.add(p)
        db.flush()
        result = processor().charge(card, price, charge_reference("open-purchase"))
        count_card_result(user, result)
        if not result.approved:
            p.status, p.decline_code = OpenPurchaseStatus.DECLINED, result.decline_code
            db.flush()
            raise DeclinedOpenPurchase(p, result.decline_code)
        p.processor_ref = result.reference
        _queue_issue(db, p, user, member_id, cat)
        return Outcome(201, {"id": p.id})
    if method not in OFFLINE_METHODS:
        raise Invalid("method must be card, check, money_order or purchase_order")
    db.add(p)
    db.flush()
    p.invoice_number = f"OINV-{p.id:07d}"
    db.flush()
    return Outcome(202, {"id": p.id})


def _queue_issue(db: Session, p: OpenTokenPurchase, buyer: User, member_id: str, cat: Catalog | None) -> None:
    """Paid: `pending`, and the MSP's issue queued in the same transaction (message id =
    operation id, so the MSP issues once however often it is sent)."""
    body: dict[str, Any] = {"operation_id": p.operation_id, "kind": p.kind, "issuer": p.issuer, "tokens": p.tokens,
                            "price_cents": p.price_cents, "customer": _customer(member_id, buyer)}
    if p.kind == OpenKind.GIFT_CERTIFICATE:
        # the certificate's life starts when it is paid for (an off-line purchase: at confirmation)
        days = gift_certificate_days(db, cat)
        p.gift_expires_at = (utcnow() + timedelta(days=days)).replace(microsecond=0)
        p.gift_code_sha256 = gift_code_digest(gift_code(gift_secret(), p.operation_id))
        body["expires_at"] = p.gift_expires_at.isoformat()
        body["gift_certificate"] = {"code_sha256": p.gift_code_sha256}
        if p.recipient_username:
            to = db.scalar(select(User).where(User.username == p.recipient_username))
            if to is None:
                raise Conflict("the certificate's recipient has no account here any more")
            body["recipient"] = _customer(member_id, to)
    p.status, p.updated_at = OpenPurchaseStatus.PENDING, utcnow()
    outbox.enqueue(db, MallOutboxMessage, kind=OpenMessageKind.ISSUE, destination=MSP_ID, method="POST",
                   path=ISSUES_PATH, message_id=p.operation_id, body=body)
    db.flush()


def _locked_purchase(db: Session, purchase_id: int) -> OpenTokenPurchase:
    p = db.get(OpenTokenPurchase, purchase_id)
    if p is None:
        raise NotFound("no such open-token purchase")
    ledger.lock_wallets(db, p.user_id)
    db.refresh(p)
    return p


def confirm(db: Session, purchase_id: int, member_id: str) -> OpenTokenPurchase:
    """The operator received an off-line payment: the purchase goes to the MSP as a card one does."""
    p = _locked_purchase(db, purchase_id)
    if p.status != OpenPurchaseStatus.AWAITING_PAYMENT:
        raise Conflict(f"open-token purchase is {p.status}, not awaiting_payment")
    buyer = db.get(User, p.user_id)
    assert buyer is not None
    # no MSP call inside this transaction: the expiry is our policy's (capped at the MSP's 5 years)
    _queue_issue(db, p, buyer, member_id, None)
    return p


def cancel(db: Session, purchase_id: int) -> OpenTokenPurchase:
    """An off-line purchase never paid, or a failed one whose money the operator gave back."""
    p = _locked_purchase(db, purchase_id)
    if p.status == OpenPurchaseStatus.AWAITING_PAYMENT:
        p.reason = "cancelled by the operator"
    elif p.status == OpenPurchaseStatus.FAILED:
        p.reason = f"{p.reason}; refunded by the operator"[:300]
    else:
        raise Conflict(f"open-token purchase is {p.status}; only awaiting_payment or failed ones can be cancelled")
    p.status, p.updated_at = OpenPurchaseStatus.CANCELLED, utcnow()
    db.flush()
    return p


def _on_issue_answer(db: Session, message: Any, answer: Answer) -> None:
    """The MSP's final answer to `open.issue`: issued (its lots kept), or refused:
    `failed`, and the money is due back (refund_due) until the operator cancels it."""
    p = db.scalar(select(OpenTokenPurchase).where(OpenTokenPurchase.operation_id == message.message_id)
                  .with_for_update())
    if p is None or p.status != OpenPurchaseStatus.PENDING:
        return
    now = utcnow()
    if answer.status < 300:
        p.status, p.issued_at, p.answer_json = OpenPurchaseStatus.ISSUED, now, json.dumps(answer.body)
    else:
        p.status = OpenPurchaseStatus.FAILED
        p.reason = f"refused by the MSP ({answer.status}): {answer.detail}"[:300]
        p.answer_json = json.dumps(answer.body)
        if p.give_status == GiveStatus.GIVEN:
            p.give_status = ""
    p.updated_at = now


# ---------------------------------------------------------------- giving a certificate later

def give(db: Session, user_id: int, operation_id: str, *, member_id: str, username: str, full_name: str,
         pin_verified: bool) -> Outcome:
    """POST /v1/gift-certificates/{operation_id}/give: the buyer's certificate to
    another user of this store, by the MSP (`open.gift`, queued in this transaction)."""
    user = _buyer(db, user_id, pin_verified)
    p = db.scalar(select(OpenTokenPurchase).where(OpenTokenPurchase.operation_id == operation_id,
                                                  OpenTokenPurchase.user_id == user.id,
                                                  OpenTokenPurchase.kind == OpenKind.GIFT_CERTIFICATE))
    if p is None:
        raise NotFound("no such gift certificate")
    if p.status != OpenPurchaseStatus.ISSUED:
        raise Conflict(f"the gift certificate is {p.status}, not issued")
    if p.give_status == GiveStatus.GIVEN:
        raise Conflict(f"the gift certificate was given to {p.recipient_username}")
    if p.give_status == GiveStatus.PENDING:
        raise Conflict("a gift of this certificate is under way")
    to = _recipient(db, user, username, full_name)
    p.give_operation_id, p.give_status, p.give_reason = str(uuid.uuid4()), GiveStatus.PENDING, ""
    p.recipient_username, p.recipient_full_name, p.updated_at = to.username, to.full_name, utcnow()
    outbox.enqueue(db, MallOutboxMessage, kind=OpenMessageKind.GIFT, destination=MSP_ID, method="POST",
                   path=GIFTS_PATH, message_id=p.give_operation_id,
                   # the MSP's terms: operation_id is the certificate's sale, gift_operation_id this gift
                   body={"operation_id": p.operation_id, "gift_operation_id": p.give_operation_id,
                         "from": _customer(member_id, user), "to": _customer(member_id, to)})
    db.flush()
    return Outcome(202, {"operation_id": p.give_operation_id, "gift_operation_id": p.operation_id})


def _on_gift_answer(db: Session, message: Any, answer: Answer) -> None:
    p = db.scalar(select(OpenTokenPurchase).where(OpenTokenPurchase.give_operation_id == message.message_id)
                  .with_for_update())
    if p is None or p.give_status != GiveStatus.PENDING:
        return
    if answer.status < 300:
        p.give_status = GiveStatus.GIVEN
    else:   # still the buyer's: it may be given again (a new operation)
        p.give_status, p.give_reason = GiveStatus.REFUSED, f"refused by the MSP ({answer.status}): {answer.detail}"[:300]
        p.recipient_username = p.recipient_full_name = None
    p.updated_at = utcnow()


def give_view(p: OpenTokenPurchase | None, give_operation_id: str, gift_operation_id: str) -> tuple[int, dict]:
    """(status code, body) of a give, as it stands now: 200 given, 202 pending, 409 refused."""
    if p is None or p.give_operation_id != give_operation_id:
        # a refused gift that a later one replaced
        return 409, {"detail": "the MSP refused this gift", "reason": "refused",
                     "operation_id": give_operation_id, "gift_operation_id": gift_operation_id}
    if p.give_status == GiveStatus.REFUSED:
        return 409, {"detail": p.give_reason, "reason": "refused", "operation_id": give_operation_id,
                     "gift_operation_id": gift_operation_id}
    body = {"operation_id": give_operation_id, "gift_operation_id": gift_operation_id, "status": p.give_status,
            "to_username": p.recipient_username}
    return (200 if p.give_status == GiveStatus.GIVEN else 202), body


# ---------------------------------------------------------------- views

def purchase_view(p: OpenTokenPurchase, secret: bytes | None = None) -> dict[str, Any]:
    """A purchase as its buyer (secret given: with the gift code) or the operator sees it."""
    answer = json.loads(p.answer_json) if p.answer_json else {}
    lots = answer.get("lots", []) if p.status == OpenPurchaseStatus.ISSUED and isinstance(answer, dict) else []
    view: dict[str, Any] = {
        "id": p.id, "operation_id": p.operation_id, "kind": p.kind, "issuer": p.issuer, "tokens": p.tokens,
        "price_cents": p.price_cents, "method": p.method, "status": p.status, "reason": p.reason,
        "refund_due": p.status == OpenPurchaseStatus.FAILED, "invoice_number": p.invoice_number,
        "card_brand": p.card_brand, "card_last4": p.card_last4, "decline_code": p.decline_code,
        "recipient": ({"username": p.recipient_username, "full_name": p.recipient_full_name}
                      if p.recipient_username else None),
        "lots": lots, "created_at": p.created_at, "issued_at": p.issued_at, "user_id": p.user_id,
        "gift_certificate": None,
    }
    if p.kind == OpenKind.GIFT_CERTIFICATE:
        code = None
        if secret is not None and p.status == OpenPurchaseStatus.ISSUED and p.gift_code_sha256:
            code = gift_code(secret, p.operation_id)
            if gift_code_digest(code) != p.gift_code_sha256:
                code = None   # this store's network key changed since: the code cannot be derived again
        cert = answer.get("gift_certificate") if isinstance(answer, dict) else None
        view["gift_certificate"] = {
            "value_cents": p.price_cents, "expires_at": p.gift_expires_at, "code": code,
            "id": cert.get("id") if isinstance(cert, dict) else None,
            "give_status": p.give_status or None, "give_reason": p.give_reason or None}
    return view


def buyer_view(p: OpenTokenPurchase) -> dict[str, Any]:
    """The purchase as its buyer sees it: an issued certificate with its code (the network
    key is read only then, so a store outside a mall never makes one by listing)."""
    issued_gift = p.kind == OpenKind.GIFT_CERTIFICATE and p.status == OpenPurchaseStatus.ISSUED
    return purchase_view(p, gift_secret() if issued_gift else None)


def own_purchase(db: Session, user_id: int, purchase_id: int) -> OpenTokenPurchase:
    p = db.get(OpenTokenPurchase, purchase_id)
    if p is None or p.user_id != user_id:   # another user's purchase does not exist for you
        raise NotFound("no such open-token purchase")
    return p


def own_purchases(db: Session, user_id: int) -> list[OpenTokenPurchase]:
    return list(db.scalars(select(OpenTokenPurchase).where(OpenTokenPurchase.user_id == user_id)
                           .order_by(OpenTokenPurchase.id.desc()).limit(500)).all())


def member_id(db: Session) -> str:
    row = mall.membership(db)
    if row is None:
        raise mall.NotInMall()
    return row.member_id


HANDLERS: dict[str, outbox.Handler] = {OpenMessageKind.ISSUE: _on_issue_answer, OpenMessageKind.GIFT: _on_gift_answer}


def deliver_now(message_id: str, timeout: float = DELIVER_WAIT_SECONDS) -> Answer | None:
    """Deliver a message this request committed, waiting at most `timeout` for the answer."""
    return _net().deliver_now(message_id, timeout)
