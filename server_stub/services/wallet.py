"""Token policy, token purchases (card, off-line, on credit), grants and
user-to-user transfers (FIG 3, 4, 11, 13). Money is integer cents, tokens
integers; both move only through services.ledger."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.config import get_settings
from ..models.base import utcnow
from ..models.user import User
from ..models.wallet import Bundle, TokenPolicy, TokenPurchase
from ..vocabulary import OFFLINE_METHODS, PaymentMethod, PurchaseStatus, Role, TokenKind, TransferKind
from . import ledger, mall_notices
from .accounts import activate_if_funded, check_pin, find_user, require_active
from .cards import ChargeResult, charge_reference, parse_card, processor
from .errors import CardDeclined, Conflict, Invalid, Locked, NotFound
from .idempotency import KeepsWrites, Outcome
from .pricing import (
    bp_to_percent, bundle_view, discount_bp, percent_to_bp, policy, preferred_discount_bp, purchase_amount,
)

MAX_PURCHASE_TOKENS = 1_000_000


# ---------------------------------------------------------------- token offers

def offers(db: Session, user: User | None = None) -> dict:
    p = policy(db)
    bundles = db.scalars(select(Bundle).where(Bundle.active.is_(True)).order_by(Bundle.tokens)).all()
    return {
        "token_price_cents": p.token_price_cents,
        "min_tokens": p.min_tokens,
        "preferred_discount_percent": bp_to_percent(p.preferred_discount_bp),
        "your_discount_percent": bp_to_percent(preferred_discount_bp(p, user)),
        "bundles": [bundle_view(p, user, b) for b in bundles],
        "payment_methods": [PaymentMethod.CARD, *OFFLINE_METHODS],
    }


def bundle_admin_view(b: Bundle) -> dict:
    """A bundle as the vendor set it (admin route and CLI)."""
    return {"id": b.id, "name": b.name, "tokens": b.tokens, "discount_percent": bp_to_percent(b.discount_bp),
            "active": b.active}


# ---------------------------------------------------------------- purchases

def _credit_wallet(db: Session, user: User, tokens: int, source_code: str, kind: str, memo: str,
                   **lot) -> None:
    """Every credit from the vendor: the tokens, then the activation rule (FIG 3)."""
    ledger.credit_tokens(db, user, tokens, source_code, kind, memo, **lot)
    activate_if_funded(db, user)


def purchase_view(p: TokenPurchase) -> dict:
    return {
        "id": p.id, "status": p.status, "tokens": p.tokens, "bundle_id": p.bundle_id,
        "method": p.method, "amount_cents": p.amount_cents, "gross_cents": p.gross_cents,
        "discount_percent": bp_to_percent(p.discount_bp), "invoice_number": p.invoice_number,
        "card_brand": p.card_brand, "card_last4": p.card_last4, "decline_code": p.decline_code,
        "created_at": p.created_at, "user_id": p.user_id,
    }


def buy_tokens(db: Session, user_id: int, *, tokens: int | None, bundle_id: int | None,
               method: str, card_number: str | None = None, card_expiry: str | None = None,
               card_cvc: str | None = None) -> Outcome:
    user = ledger.lock_wallets(db, user_id)[user_id]
    bundle = None
    if bundle_id is not None:
        bundle = db.get(Bundle, bundle_id)
        if bundle is None or not bundle.active:
            raise NotFound("no such bundle")
        tokens = bundle.tokens
    if tokens is None or not 1 <= tokens <= MAX_PURCHASE_TOKENS:
        raise Invalid(f"tokens must be between 1 and {MAX_PURCHASE_TOKENS}")
    p = policy(db)
    bp = discount_bp(p, user, bundle)
    gross, amount = purchase_amount(p.token_price_cents, tokens, bp)
    purchase = TokenPurchase(user_id=user.id, tokens=tokens, bundle_id=bundle_id, method=method,
                             gross_cents=gross, discount_bp=bp, amount_cents=amount,
                             status=PurchaseStatus.PENDING)
    if method == PaymentMethod.CARD:
        return _buy_by_card(db, user, purchase, card_number, card_expiry, card_cvc)
    if method not in OFFLINE_METHODS:
        raise Invalid("method must be card, check, money_order or purchase_order")
    db.add(purchase)
    db.flush()
    purchase.invoice_number = f"INV-{purchase.id:07d}"
    db.flush()
    return Outcome(202, purchase_view(purchase))


class DeclinedPurchase(KeepsWrites, CardDeclined):
    """402: the declined purchase and the decline count are kept (FIG 3 step 115)."""

    def __init__(self, purchase: TokenPurchase, decline_code: str):
        detail = "card declined: insufficient funds" if decline_code == "insufficient_funds" else "card declined"
        super().__init__(detail, decline_code=decline_code, id=purchase.id,
                         purchase_status=PurchaseStatus.DECLINED)


def refuse_if_card_locked(user: User) -> None:
    """423 while card purchases are locked after repeated declines (FIG 3 step 115)."""
    if user.card_locked_until is not None and user.card_locked_until > utcnow():
        raise Locked("card purchases are refused for a while after repeated declines",
                     locked_until=user.card_locked_until.isoformat())


def count_card_result(user: User, result: ChargeResult) -> None:
    """FIG 3 step 115: declines count toward the card lockout; an approval resets the count.
    Shared by every card sale (token purchases, open-token purchases)."""
    if result.approved:
        user.card_declines = 0
        return
    s = get_settings()
    user.card_declines += 1
    if user.card_declines >= s.max_card_declines:
        user.card_locked_until = utcnow() + timedelta(seconds=s.card_lockout_seconds)
        user.card_declines = 0


def _buy_by_card(db: Session, user: User, purchase: TokenPurchase, number, expiry, cvc) -> Outcome:
    refuse_if_card_locked(user)
    card = parse_card(number or "", expiry or "", cvc or "")
    purchase.card_brand, purchase.card_last4 = card.brand, card.last4
    # the purchase is written once, with the charge's result: one INSERT, no UPDATE after it
    result = processor().charge(card, purchase.amount_cents, charge_reference("purchase"))
    count_card_result(user, result)
    if not result.approved:
        purchase.status, purchase.decline_code = PurchaseStatus.DECLINED, result.decline_code
        db.add(purchase)
        db.flush()
        raise DeclinedPurchase(purchase, result.decline_code)
    purchase.processor_ref = result.reference
    purchase.status = PurchaseStatus.COMPLETED
    purchase.credited_at = purchase.settled_at = utcnow()
    db.add(purchase)
    db.flush()   # its id, for the transfers below
    _credit_wallet(db, user, purchase.tokens, ledger.ISSUANCE, TransferKind.PURCHASE,
                   f"bought {purchase.tokens} tokens by card", purchase_id=purchase.id)
    mall_notices.sale(db, purchase.id, purchase.tokens, purchase.amount_cents)
    ledger.move_cents(db, ledger.SALES, ledger.CASH, purchase.amount_cents, TransferKind.CARD_PAYMENT,
                      f"purchase {purchase.id}", purchase_id=purchase.id)
    body = purchase_view(purchase)
    body["available_tokens"] = ledger.available_tokens(db, user)
    return Outcome(201, body)


def _locked_purchase(db: Session, purchase_id: int) -> tuple[TokenPurchase, User]:
    p = db.get(TokenPurchase, purchase_id)
    if p is None:
        raise NotFound("no such token purchase")
    user = ledger.lock_wallets(db, p.user_id)[p.user_id]
    db.refresh(p)
    return p, user


def _credit_purchase_tokens(db: Session, p: TokenPurchase, user: User, memo: str) -> None:
    _credit_wallet(db, user, p.tokens, ledger.ISSUANCE, TransferKind.PURCHASE, memo, purchase_id=p.id)
    p.credited_at = utcnow()
    mall_notices.sale(db, p.id, p.tokens, p.amount_cents, p.credited_at)


def confirm_purchase(db: Session, purchase_id: int) -> TokenPurchase:
    """Payment received: a pending purchase is credited; a receivable is settled."""
    p, user = _locked_purchase(db, purchase_id)
    if p.status == PurchaseStatus.PENDING:
        _credit_purchase_tokens(db, p, user, f"bought {p.tokens} tokens by {p.method} {p.invoice_number}")
        ledger.move_cents(db, ledger.SALES, ledger.CASH, p.amount_cents, TransferKind.OFFLINE_PAYMENT,
                          p.invoice_number or "", purchase_id=p.id)
    elif p.status == PurchaseStatus.CREDITED:
        ledger.move_cents(db, ledger.RECEIVABLES, ledger.CASH, p.amount_cents, TransferKind.RECEIVABLE_PAID,
                          p.invoice_number or "", purchase_id=p.id)
    else:
        raise Conflict(f"purchase is {p.status}, not pending or credited")
    p.status, p.settled_at = PurchaseStatus.COMPLETED, utcnow()
    db.flush()
    return p


def credit_before_payment(db: Session, purchase_id: int) -> TokenPurchase:
    """FIG 13: the vendor credits the tokens now; the purchase stays a receivable."""
    p, user = _locked_purchase(db, purchase_id)
    if p.status != PurchaseStatus.PENDING:
        raise Conflict(f"purchase is {p.status}, not pending")
    _credit_purchase_tokens(db, p, user, f"{p.tokens} tokens on credit, {p.invoice_number}")
    ledger.move_cents(db, ledger.SALES, ledger.RECEIVABLES, p.amount_cents, TransferKind.RECEIVABLE,
                      p.invoice_number or "", purchase_id=p.id)
    p.status = PurchaseStatus.CREDITED
    db.flush()
    return p


def cancel_purchase(db: Session, purchase_id: int) -> TokenPurchase:
    p, _user = _locked_purchase(db, purchase_id)
    if p.status != PurchaseStatus.PENDING:
        raise Conflict(f"purchase is {p.status}; only pending purchases can be cancelled")
    p.status, p.settled_at = PurchaseStatus.CANCELLED, utcnow()
    db.flush()
    return p


# ---------------------------------------------------------------- vendor settings

def grant_tokens(db: Session, username: str, tokens: int, kind: str = TokenKind.STANDARD,
                 expires_at: datetime | None = None, memo: str = "") -> User:
    if kind not in frozenset(TokenKind):   # a str: `in` the enum class itself raises on 3.11
        raise Invalid(f"kind must be one of {', '.join(TokenKind)}")
    if not 1 <= tokens <= MAX_PURCHASE_TOKENS:
        raise Invalid(f"tokens must be between 1 and {MAX_PURCHASE_TOKENS}")
    user = find_user(db, username)
    if user is None:
        raise NotFound("no such user")
    ledger.lock_wallets(db, user.id)
    _credit_wallet(db, user, tokens, ledger.PROMOTIONS, TransferKind.GRANT, memo or f"{kind} tokens from the vendor",
                   token_kind=kind, expires_at=expires_at)
    return user


def _user(db: Session, username: str) -> User:
    user = find_user(db, username)
    if user is None:
        raise NotFound("no such user")
    return user


def set_negative_limit(db: Session, username: str, tokens: int) -> User:
    if not 0 <= tokens <= MAX_PURCHASE_TOKENS:
        raise Invalid(f"limit must be between 0 and {MAX_PURCHASE_TOKENS}")
    user = _user(db, username)
    ledger.lock_wallets(db, user.id)
    debt = ledger.load_wallet(db, user).debt
    if tokens < debt:
        raise Conflict(f"{username} has drawn {debt} tokens on credit: the limit cannot go below that",
                       debt=debt)
    user.negative_limit = tokens
    db.flush()
    return user


def set_preferred(db: Session, username: str, preferred: bool) -> User:
    user = _user(db, username)
    user.preferred = preferred
    db.flush()
    return user


def update_policy(db: Session, *, token_price_cents: int | None = None, min_tokens: int | None = None,
                  preferred_discount_percent: float | None = None,
                  registration_grant_tokens: int | None = None) -> TokenPolicy:
    p = policy(db)
    if token_price_cents is not None:
        if not 1 <= token_price_cents <= 1_000_000:
            raise Invalid("token_price_cents must be between 1 and 1000000")
        p.token_price_cents = token_price_cents
    if min_tokens is not None:
        if not 0 <= min_tokens <= MAX_PURCHASE_TOKENS:
            raise Invalid("min_tokens out of range")
        p.min_tokens = min_tokens
    if preferred_discount_percent is not None:
        p.preferred_discount_bp = percent_to_bp(preferred_discount_percent)
    if registration_grant_tokens is not None:
        if not 0 <= registration_grant_tokens <= MAX_PURCHASE_TOKENS:
            raise Invalid("registration_grant_tokens out of range")
        p.registration_grant_tokens = registration_grant_tokens
    p.updated_at = utcnow()
    db.flush()
    return p


def upsert_bundle(db: Session, name: str, tokens: int, discount_percent: float, active: bool = True) -> Bundle:
    if not 1 <= tokens <= MAX_PURCHASE_TOKENS:
        raise Invalid("bundle tokens out of range")
    if not name or len(name) > 50:
        raise Invalid("bundle name must be 1-50 characters")
    b = db.scalar(select(Bundle).where(Bundle.name == name))
    if b is None:
        b = Bundle(name=name)
        db.add(b)
    b.tokens, b.discount_bp, b.active = tokens, percent_to_bp(discount_percent), active
    db.flush()
    return b


# ---------------------------------------------------------------- transfers (FIG 11)

def same_name(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def transfer(db: Session, sender_id: int, *, to_username: str, to_full_name: str, tokens: int,
             pin_verified: bool) -> Outcome:
    """`pin_verified` comes from accounts.pin_matches, run before this transaction."""
    # both rows read under their locks, the recipient found by name in the same statement: the
    # PIN counters and the status must be the latest, or parallel wrong PINs would all count as one
    locked = ledger.lock_wallets(db, sender_id, usernames=[to_username])
    sender = locked[sender_id]
    recipient = next((u for u in locked.values() if u.username == to_username), None)
    require_active(sender)
    check_pin(sender, pin_verified)
    if recipient is None or recipient.role != Role.USER or not same_name(recipient.full_name, to_full_name):
        raise NotFound("no user with that username and full name")
    if recipient.id == sender.id:
        raise Invalid("cannot transfer tokens to yourself")
    plan = ledger.plan_transferable(db, sender, tokens)
    memo = f"transfer from {sender.username} to {recipient.username}"
    first = None
    for lot, n in plan.takes:
        dest = ledger.wallet_lot(db, recipient.id, TokenKind.STANDARD, lot.expires_at)
        t = ledger.post_transfer(db, lot, dest, n, TransferKind.TRANSFER, memo)
        first = first or t
    activate_if_funded(db, recipient)
    return Outcome(201, {"id": first, "tokens": tokens, "to_username": recipient.username,
                         "available_tokens": ledger.available_tokens(db, sender)})
