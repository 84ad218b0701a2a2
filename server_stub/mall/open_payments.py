"""Open payments at the MSP (FIG 18 step 7, FIG 20A/B, claims 6-9; docs/mall.md
"Paying with open tokens", "Holds, results and refunds", "The cash side of open tokens").

A two-phase hold, as TigerBeetle's pending transfers:

- `plan`: what would pay (open_money.plan_payment over the customer's lots), no hold.
- `authorize`: in one transaction, the customer's lot accounts locked, the plan made
  and each lot's part moved `lot:<origin>` -> `pending:<operation>:<lot id>`
  (a gift certificate is held whole: what the lines do not need is its change).
- `confirmed`: pending -> `accepted:<member>:<asset>`; a certificate's change goes back
  to its issuance and comes out as a new universal lot (`change:<operation>:<lot id>`,
  exactly once); the cash side is booked (one Movement per payer and receiver).
- `voided` (by the member, or by the MSP once the hold expired): pending -> the same lots.
- `refund` of a confirmed payment: every part back to its own lot, the change taken
  back (refused when spent), the cash reversed by OPEN_REFUND movements.

Every function runs in the caller's write transaction (the inbox's, or the
settlement scheduler's for expiry); a refusal raises ApiError and moves nothing.
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..core.config import get_settings
from ..db import write_session
from ..models.base import utcnow
from ..network import open_money, outbox
from ..network.money import UNITS_PER_CENT, FeeSchedule, split_units
from ..network.open_money import OpenKind, OpenPlan, Portion
from ..network.types import Answer
from ..services.errors import ApiError, Conflict, Forbidden, Invalid, NotFound, first_error
from . import books, members, open_lots, records
from .models import (
    Brand, BrandProduct, CustomerRecord, FeeRecord, GiftCertificate, Group, GroupMember, MallAccount, Member,
    MspInboxMessage, Movement, OpenLot, OpenPayment, OpenPaymentPortion,
)
from .schemas import OpenPaymentIn, OpenPaymentResultIn, OpenPlanIn, OpenRefundIn, PayingCustomer
from .vocabulary import (
    BookEntryKind, FeeKind, GiftCertificateStatus, MovementKind, OpenPaymentStatus, PortionKind,
)

# A refund into a lot that expired meanwhile revives it this long (docs/mall.md policy).
REFUND_REVIVAL = timedelta(days=30)
HOLD_EXPIRED = "expired"            # OpenPayment.reason of a hold the MSP voided
EXPIRE_BATCH = 100                  # holds voided per scheduler round (the next round takes the rest)
# Movement ids of an open payment's cash (one per payer and receiver), derived, so a repeat makes none twice.
OPEN_CASH_NAMESPACE = uuid.UUID("8b1f3c52-6e0d-4f7a-b2c9-3d5e7a9f1c04")

M = TypeVar("M", bound=BaseModel)


class OpenPaymentShort(ApiError):
    """402: the customer's usable lots do not pay the lines; nothing is held."""

    status_code = 402
    problem = "insufficient-tokens"

    def __init__(self, plan: OpenPlan) -> None:
        super().__init__(f"the customer's open tokens are {plan.short_units} units short", reason="short",
                         short_units=plan.short_units, helpful_kinds=[k.value for k in plan.helpful_kinds])


def _parse(model: type[M], raw: Any) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise Invalid(first_error(e)) from None


# ---------------------------------------------------------------- the plan (FIG 20A/B)

def _customer_id(db: Session, c: PayingCustomer) -> int | None:
    return db.scalar(select(CustomerRecord.id).where(CustomerRecord.home_member_id == c.home_member,
                                                     CustomerRecord.home_user_id == c.home_user_id))


def _context(db: Session, member_id: str, req: OpenPlanIn, now: datetime
             ) -> tuple[list[open_money.Line], open_money.Context]:
    """The lines as the rules take them (each product's brand at the accepting member,
    the product list 2103) and the accepting member's groups and the brands' type 2 caps."""
    groups = frozenset(db.scalars(select(Group.name).join(GroupMember, GroupMember.group_id == Group.id)
                                  .where(GroupMember.member_id == member_id)))
    brand_of = {p: b for p, b in db.execute(select(BrandProduct.product_id, BrandProduct.brand_id).where(
        BrandProduct.member_id == member_id, BrandProduct.product_id.in_({ln.product_id for ln in req.lines})))}
    caps = {b: int(c) for b, c in db.execute(select(Brand.brand_id, Brand.free_cap_units)
                                             .where(Brand.brand_id.in_(set(brand_of.values()))))} if brand_of else {}
    lines = [open_money.Line(ln.line, ln.product_id, ln.quantity, ln.units, brand_of.get(ln.product_id))
             for ln in req.lines]
    return lines, open_money.Context(member_id, groups, caps, now)


def _make_plan(db: Session, member_id: str, req: OpenPlanIn, now: datetime, *, lock: bool
               ) -> tuple[int | None, OpenPlan, list[open_lots.LotBalance]]:
    customer_id = _customer_id(db, req.customer)
    balances = open_lots.customer_lots(db, customer_id, for_update=lock) if customer_id is not None else []
    lines, ctx = _context(db, member_id, req, now)
    try:
        return customer_id, open_money.plan_payment(lines, open_lots.plan_lots(balances), ctx), balances
    except open_money.OpenMoneyError as e:
        raise Invalid(str(e)) from None


def _portion_view(p: Portion) -> dict[str, Any]:
    return {"line": p.line, "lot_id": p.lot_id, "kind": p.kind.value, "issuer": p.issuer,
            "asset": open_money.asset_name(p.kind, p.issuer), "tokens": p.tokens}


def plan_view(p: OpenPlan) -> dict[str, Any]:
    return {"portions": [_portion_view(x) for x in p.portions], "change": [_portion_view(x) for x in p.change],
            "short_units": p.short_units, "helpful_kinds": [k.value for k in p.helpful_kinds]}


def plan(db: Session, caller: str, req: OpenPlanIn) -> dict[str, Any]:
    """POST /v1/mall/open-plans: what would pay the lines now (nothing held, nothing written)."""
    members.require_active(db, caller)
    _, p, _ = _make_plan(db, caller, req, utcnow(), lock=False)
    return {"plan": plan_view(p), "unit_value_cents": open_lots.unit_value_cents(db)}


# ---------------------------------------------------------------- accounts

def pending_account(db: Session, operation_id: str, lot: OpenLot, *, new: bool = False) -> MallAccount:
    """The hold of one payment on one lot (`new`: the authorization that makes it)."""
    return books.account(db, f"pending:{operation_id}:{lot.id}", lot.asset, likely_new=new)


def accepted_account(db: Session, member_id: str, asset: str) -> MallAccount:
    return books.account(db, f"accepted:{member_id}:{asset}", asset, owner_member_id=member_id)


def _lots(db: Session, ids: Iterable[int]) -> dict[int, OpenLot]:
    return {lot.id: lot for lot in db.scalars(select(OpenLot).where(OpenLot.id.in_(set(ids))))}


def _rows(db: Session, payment: OpenPayment) -> list[OpenPaymentPortion]:
    return list(db.scalars(select(OpenPaymentPortion).where(OpenPaymentPortion.payment_id == payment.id)
                           .order_by(OpenPaymentPortion.id)))


def _per_lot(rows: Iterable[OpenPaymentPortion], kind: PortionKind | None = None) -> dict[int, int]:
    out: dict[int, int] = defaultdict(int)
    for r in rows:
        if kind is None or r.kind == kind:
            out[r.lot_id] += int(r.tokens)
    return dict(sorted(out.items()))   # lot id order: one order of row locks


def _by_asset(per_lot: dict[int, int], lots: dict[int, OpenLot]) -> list[tuple[int, int]]:
    """Postings into or out of the member's shared `accepted:` accounts in one order
    (asset, then lot): two transactions never wait on each other's in a cycle."""
    return sorted(per_lot.items(), key=lambda item: (lots[item[0]].asset, item[0]))


def _balance_after(balances: Iterable[open_lots.LotBalance], now: datetime,
                   taken: dict[int, int] | None = None) -> dict[str, int]:
    """Per asset, the usable tokens left: the lots' balances less what `taken` (lot -> tokens) holds."""
    out: dict[str, int] = defaultdict(int)
    for b in balances:
        left = b.tokens - (taken or {}).get(b.lot.id, 0)
        if left > 0 and not b.expired(now):
            out[b.lot.asset] += left
    return dict(sorted(out.items()))


def payment_view(db: Session, payment: OpenPayment, now: datetime | None = None,
                 balance_after: dict[str, int] | None = None) -> dict[str, Any]:
    now = now or utcnow()
    if balance_after is None:
        balance_after = _balance_after(open_lots.customer_lots(db, payment.customer_id), now)
    return {"operation_id": payment.operation_id, "status": payment.status,
            "portions": payment.plan.get("portions", []), "change": payment.plan.get("change", []),
            "units": int(payment.units), "hold_expires_at": payment.hold_expires_at.isoformat(),
            "reason": payment.reason, "change_lots": payment.plan.get("change_lots", []),
            "balance_after": balance_after}


# ---------------------------------------------------------------- authorize

def authorize(db: Session, caller: str, raw: Any, message_id: str, now: datetime | None = None) -> dict[str, Any]:
    """POST /v1/mall/open-payments: hold the plan's tokens (lot -> pending) or refuse (402 short)."""
    now = now or utcnow()
    req = _parse(OpenPaymentIn, raw)
    if message_id != req.operation_id:
        raise Invalid("an open payment's Idempotency-Key is its operation_id")
    members.require_active(db, caller)
    if db.scalar(select(OpenPayment.id).where(OpenPayment.operation_id == req.operation_id)) is not None:
        raise Conflict(f"operation {req.operation_id} is another payment's", reason="operation_taken")
    # the customer's lot accounts locked first: a payment racing for the same lot waits here and then
    # sees it empty (PostgreSQL re-reads a locked row; SQLite's writers are serialized)
    customer_id, p, balances = _make_plan(db, caller, req, now, lock=True)
    if not p.payable:
        raise OpenPaymentShort(p)
    assert customer_id is not None   # a payable plan had lots
    payment = OpenPayment(operation_id=req.operation_id, member_id=caller, customer_id=customer_id, units=p.units,
                          status=OpenPaymentStatus.AUTHORIZED,
                          hold_expires_at=now + timedelta(seconds=get_settings().msp_open_payment_hold_seconds),
                          plan={**plan_view(p), "lines": [ln.model_dump() for ln in req.lines]},
                          created_at=now, updated_at=now)
    db.add(payment)
    db.flush()
    rows = [OpenPaymentPortion(payment_id=payment.id, line=x.line, lot_id=x.lot_id, tokens=x.tokens,
                               kind=PortionKind.PORTION) for x in p.portions]
    rows += [OpenPaymentPortion(payment_id=payment.id, line=0, lot_id=x.lot_id, tokens=x.tokens,
                                kind=PortionKind.CHANGE) for x in p.change]
    db.add_all(rows)
    held = _per_lot(rows)
    lots = {b.lot.id: b.lot for b in balances}   # the plan's lots, locked above
    for lot_id, tokens in held.items():
        books.post(db, open_lots.lot_account(db, lots[lot_id]), pending_account(db, req.operation_id, lots[lot_id], new=True),
                   tokens, kind=BookEntryKind.OPEN_PAYMENT, operation_id=req.operation_id)
    db.flush()
    return payment_view(db, payment, now, _balance_after(balances, now, held))


def receive_payment(sender: str, message_id: str, body: Any) -> Answer:
    return outbox.receive(write_session, MspInboxMessage, sender=sender, message_id=message_id, body=body,
                          apply=outbox.applied(lambda db: authorize(db, sender, body, message_id)))


# ---------------------------------------------------------------- results: confirm, void, expiry

def _payment(db: Session, operation_id: str, caller: str) -> OpenPayment:
    payment = db.scalar(select(OpenPayment).where(OpenPayment.operation_id == operation_id).with_for_update()
                        .execution_options(populate_existing=True))
    if payment is None:
        raise NotFound(f"no open payment {operation_id}")
    if payment.member_id != caller:
        raise Forbidden("only the member that took an open payment ends or refunds it")
    return payment


def _void(db: Session, payment: OpenPayment, reason: str, now: datetime) -> None:
    """Every held token back to the lot it came from (expired lots too: they simply stay unusable)."""
    rows = _rows(db, payment)
    held = _per_lot(rows)
    lots = _lots(db, held)
    for lot_id, tokens in held.items():
        books.post(db, pending_account(db, payment.operation_id, lots[lot_id]), open_lots.lot_account(db, lots[lot_id]),
                   tokens, kind=BookEntryKind.OPEN_PAYMENT, operation_id=payment.operation_id)
    payment.status, payment.reason, payment.updated_at = OpenPaymentStatus.VOIDED, reason[:300] or None, now
    db.flush()


def expire_holds(db: Session, now: datetime | None = None, *, operation_id: str | None = None,
                 limit: int = EXPIRE_BATCH) -> int:
    """Void the authorizations whose hold expired (the settlement scheduler's round,
    and a result's first step); returns how many. A payment another transaction is
    ending is skipped (PostgreSQL SKIP LOCKED): it is ended already."""
    now = now or utcnow()
    q = select(OpenPayment).where(OpenPayment.status == OpenPaymentStatus.AUTHORIZED,
                                  OpenPayment.hold_expires_at <= now)
    if operation_id is not None:
        q = q.where(OpenPayment.operation_id == operation_id)
    due = db.scalars(q.order_by(OpenPayment.id).limit(limit).with_for_update(skip_locked=True)
                     .execution_options(populate_existing=True)).all()
    for payment in due:
        _void(db, payment, HOLD_EXPIRED, now)
    return len(due)


def _schedule(m: Member) -> FeeSchedule:
    return FeeSchedule(m.service_charge_bp, m.royalty_bp, m.fixed_fee_cents)


def _cash_id(kind: MovementKind, operation_id: str, payer: str, receiver: str) -> str:
    return str(uuid.uuid5(OPEN_CASH_NAMESPACE, f"{kind.value}:{operation_id}:{payer}:{receiver}"))


def _book_cash(db: Session, kind: MovementKind, movement_id: str, payer: str, receiver: str, value_units: int,
               tokens: int, customer_id: int | None, fees: list[tuple[str, FeeKind, int]], *, reverse: bool = False) -> None:
    """One movement `payer` -> `receiver` (a refund: the same pair, `reverse` moves the cents back):
    whole cents into the positions now, the exact units and the fees for the period's statement."""
    cents = value_units // UNITS_PER_CENT
    if not records.completed_movement(db, records.MovementTerms(movement_id, kind, payer, receiver, tokens, tokens,
                                                                cents, customer_id), value_units):
        return   # booked already (the same terms): never twice
    if cents:
        src, dst = books.position_account(db, payer), books.position_account(db, receiver)
        if reverse:
            src, dst = dst, src
        books.post(db, src, dst, cents, kind=BookEntryKind.OPEN_REFUND if reverse else BookEntryKind.OPEN_PAYMENT,
                   operation_id=movement_id)
    for member_id, fee_kind, units in fees:
        if units:
            records.add_fee(db, member_id, movement_id, fee_kind, units)


def _confirm(db: Session, payment: OpenPayment, now: datetime) -> None:
    op = payment.operation_id
    rows = _rows(db, payment)
    lots = _lots(db, (r.lot_id for r in rows))
    for lot_id, tokens in _by_asset(_per_lot(rows, PortionKind.PORTION), lots):
        lot = lots[lot_id]
        books.post(db, pending_account(db, op, lot), accepted_account(db, payment.member_id, lot.asset), tokens,
                   kind=BookEntryKind.OPEN_PAYMENT, operation_id=op)
    change_lots = []
    for cert_id, tokens in _per_lot(rows, PortionKind.CHANGE).items():
        cert = lots[cert_id]
        # the certificate's rest leaves circulation as what it was and comes back as universal tokens
        # of the same seller, at the certificate's price and expiry (the seller still holds its cash)
        books.post(db, pending_account(db, op, cert), open_lots.issuance_account(db, cert.asset, cert.seller_member_id),
                   tokens, kind=BookEntryKind.OPEN_PAYMENT, operation_id=op)
        lot, _ = open_lots.issue_lot(db, open_lots.LotTerms(
            customer_id=payment.customer_id, kind=OpenKind.UNIVERSAL, issuer=None, tokens=tokens,
            seller_member_id=cert.seller_member_id, paid_bp=cert.paid_bp, expires_at=cert.expires_at,
            origin=change_origin(op, cert_id)), operation_id=op)
        change_lots.append(lot.id)
    certificates = {lot.gift_certificate_id for lot in lots.values() if lot.gift_certificate_id is not None}
    if certificates:
        db.execute(update(GiftCertificate).where(GiftCertificate.id.in_(certificates))
                   .values(status=GiftCertificateStatus.SPENT))     # used whole
    movements = _book_payment_cash(db, payment, rows, lots)
    payment.plan = {**payment.plan, "change_lots": change_lots, "movements": movements}
    payment.status, payment.updated_at = OpenPaymentStatus.CONFIRMED, now
    db.flush()


def change_origin(operation_id: str, certificate_lot_id: int) -> str:
    return f"change:{operation_id}:{certificate_lot_id}"


def _book_payment_cash(db: Session, payment: OpenPayment, rows: list[OpenPaymentPortion],
                       lots: dict[int, OpenLot]) -> list[str]:
    """FIG 18 step 7, claim 8: per portion who owes the accepting member what
    (open_money.portion_cash), summed per payer and receiver, then the payer's fee
    schedule once per pair (network.money.split_units). Returns the movement ids."""
    unit = open_lots.unit_value_cents(db)
    brands = {lot.issuer for lot in lots.values()
              if lot.kind in (OpenKind.MANUFACTURER, OpenKind.MANUFACTURER_FREE)}
    brand_member = {b: m for b, m in db.execute(select(Brand.brand_id, Brand.member_id)
                                                .where(Brand.brand_id.in_(brands)))} if brands else {}
    owed: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])   # (payer, receiver) -> [units, tokens]
    for r in rows:
        if r.kind != PortionKind.PORTION:
            continue
        lot = lots[r.lot_id]
        kind = OpenKind(lot.kind)
        brand = brand_member.get(lot.issuer or "") if kind in (OpenKind.MANUFACTURER, OpenKind.MANUFACTURER_FREE) else None
        if kind in (OpenKind.MANUFACTURER, OpenKind.MANUFACTURER_FREE) and brand is None:
            raise Conflict(f"brand {lot.issuer} is unknown: its tokens cannot be settled", reason="unknown_brand")
        for cl in open_money.portion_cash(kind, int(r.tokens), unit, lot.paid_bp, seller=lot.seller_member_id,
                                          accepting=payment.member_id, brand_member=brand):
            owed[(cl.payer, cl.receiver)][0] += cl.units
            owed[(cl.payer, cl.receiver)][1] += int(r.tokens)
    # every position this payment touches, locked at once in id order (a deadlock otherwise,
    # on PostgreSQL, between two confirms posting the same positions in another order)
    books.lock_accounts(db, [books.position_account(db, m) for pair in owed for m in pair])
    ids = []
    for (payer, receiver), (units, tokens) in sorted(owed.items()):
        movement_id = _cash_id(MovementKind.OPEN_PAYMENT, payment.operation_id, payer, receiver)
        split = split_units(units, _schedule(members.get_member(db, payer)))
        # as in an exchange, the receiver pays the fees out of what it is owed: the service
        # charge to the payer (settlement credits the movement's from_member), the rest to the MSP
        fees = [(receiver, FeeKind.SERVICE_CHARGE, split.service_charge_units),
                (receiver, FeeKind.ROYALTY, split.royalty_units), (receiver, FeeKind.MESSAGE_FEE, split.fixed_fee_units)]
        _book_cash(db, MovementKind.OPEN_PAYMENT, movement_id, payer, receiver, units, tokens, payment.customer_id, fees)
        ids.append(movement_id)
    return ids


def apply_result(db: Session, caller: str, raw: Any, message_id: str, now: datetime | None = None) -> dict[str, Any]:
    """POST /v1/mall/open-payment-results: confirm (the units must be the authorized
    ones) or void a held payment; a result for an ended payment answers its outcome
    when it is the same, else 409 with `reason` (expired, voided, confirmed, refunded)."""
    now = now or utcnow()
    req = _parse(OpenPaymentResultIn, raw)
    if message_id != f"{req.operation_id}:result":
        raise Invalid("an open payment result's Idempotency-Key is `<operation_id>:result`")
    payment = _payment(db, req.operation_id, caller)
    status = OpenPaymentStatus(payment.status)
    if req.status == OpenPaymentStatus.VOIDED:
        if status == OpenPaymentStatus.AUTHORIZED:
            _void(db, payment, req.reason or "voided by the member", now)
        elif status != OpenPaymentStatus.VOIDED:
            raise Conflict(f"open payment {req.operation_id} is {status}: it is not voided", reason=status.value)
        return payment_view(db, payment, now)
    if status == OpenPaymentStatus.VOIDED:
        reason = HOLD_EXPIRED if payment.reason == HOLD_EXPIRED else OpenPaymentStatus.VOIDED.value
        raise Conflict(f"open payment {req.operation_id} was voided ({payment.reason})", reason=reason)
    if status == OpenPaymentStatus.AUTHORIZED and now >= payment.hold_expires_at:
        raise Conflict(f"the hold of open payment {req.operation_id} expired", reason=HOLD_EXPIRED)
    if req.units != payment.units:
        raise Conflict(f"open payment {req.operation_id} authorized {payment.units} units, not {req.units}",
                       reason="units_mismatch", authorized_units=int(payment.units))
    if status == OpenPaymentStatus.AUTHORIZED:
        _confirm(db, payment, now)
    elif status == OpenPaymentStatus.REFUNDED:
        raise Conflict(f"open payment {req.operation_id} was confirmed and refunded", reason=status.value)
    return payment_view(db, payment, now)


def receive_result(sender: str, message_id: str, body: Any) -> Answer:
    operation_id = body.get("operation_id") if isinstance(body, dict) else None

    def expire_first(db: Session) -> None:   # a hold already expired is voided first, so the answer says so
        if isinstance(operation_id, str) and len(operation_id) <= 36:
            expire_holds(db, operation_id=operation_id)

    return outbox.receive(write_session, MspInboxMessage, sender=sender, message_id=message_id, body=body,
                          apply=outbox.applied(lambda db: apply_result(db, sender, body, message_id)),
                          before=expire_first)


# ---------------------------------------------------------------- refunds

def _lock_balance(db: Session, account_id: int) -> int:
    return int(db.scalar(select(MallAccount.balance).where(MallAccount.id == account_id).with_for_update()) or 0)


def refund(db: Session, caller: str, raw: Any, message_id: str, now: datetime | None = None) -> dict[str, Any]:
    """POST /v1/mall/open-refunds: a confirmed payment undone whole."""
    now = now or utcnow()
    req = _parse(OpenRefundIn, raw)
    if message_id != req.refund_id:
        raise Invalid("an open refund's Idempotency-Key is its refund_id")
    payment = _payment(db, req.operation_id, caller)
    if payment.status == OpenPaymentStatus.REFUNDED:
        first = payment.plan.get("refund", {}).get("refund_id")
        if first != req.refund_id:
            raise Conflict(f"open payment {req.operation_id} was refunded already (refund {first})",
                           reason="already_refunded", refund_id=first)
        return _refund_view(req.refund_id, payment)
    if payment.status != OpenPaymentStatus.CONFIRMED:
        raise Conflict(f"only a confirmed open payment is refunded; {req.operation_id} is {payment.status}",
                       reason="not_confirmed")
    op = payment.operation_id
    rows = _rows(db, payment)
    # the customer's lot accounts first, in id order, as a payment's authorization locks them
    open_lots.customer_lots(db, payment.customer_id, with_empty=True, for_update=True)
    lots = _lots(db, (r.lot_id for r in rows))
    for cert_id, tokens in _per_lot(rows, PortionKind.CHANGE).items():
        cert = lots[cert_id]
        change = db.scalar(select(OpenLot).where(OpenLot.origin == change_origin(op, cert_id)))
        if change is None or _lock_balance(db, change.account_id) != tokens:
            raise Conflict("the change of this payment's gift certificate was already spent", reason="change_spent")
        books.post(db, open_lots.lot_account(db, change),
                   open_lots.issuance_account(db, change.asset, change.seller_member_id), tokens,
                   kind=BookEntryKind.OPEN_REFUND, operation_id=op)
        books.post(db, open_lots.issuance_account(db, cert.asset, cert.seller_member_id),
                   open_lots.lot_account(db, cert), tokens, kind=BookEntryKind.OPEN_REFUND, operation_id=op)
    for lot_id, tokens in _by_asset(_per_lot(rows, PortionKind.PORTION), lots):
        lot = lots[lot_id]
        books.post(db, accepted_account(db, payment.member_id, lot.asset), open_lots.lot_account(db, lot), tokens,
                   kind=BookEntryKind.OPEN_REFUND, operation_id=op)
    for lot in lots.values():
        if lot.expires_at is not None and lot.expires_at <= now:   # revived for a while (docs/mall.md policy)
            lot.expires_at = now + REFUND_REVIVAL
    certificates = {lot.gift_certificate_id for lot in lots.values() if lot.gift_certificate_id is not None}
    for gc in db.scalars(select(GiftCertificate).where(GiftCertificate.id.in_(certificates))):
        gc.status = GiftCertificateStatus.ACTIVE
    reversed_ids = payment.plan.get("movements", [])
    pairs = db.execute(select(Movement.from_member, Movement.to_member)
                       .where(Movement.operation_id.in_(reversed_ids))).all()
    books.lock_accounts(db, [books.position_account(db, m) for pair in pairs for m in pair])   # as in a confirm
    for movement_id in reversed_ids:
        _reverse_cash(db, movement_id)
    payment.plan = {**payment.plan, "refund": {"refund_id": req.refund_id, "at": now.isoformat(),
                                               "reason": req.reason}}
    payment.status, payment.updated_at = OpenPaymentStatus.REFUNDED, now
    db.flush()
    return _refund_view(req.refund_id, payment)


def _reverse_cash(db: Session, movement_id: str) -> None:
    """An OPEN_REFUND movement mirroring one of the payment's: the same pair, value
    and fees (as recorded, whatever the schedule says today); settlement subtracts it."""
    mv = db.scalar(select(Movement).where(Movement.operation_id == movement_id))
    assert mv is not None and mv.value_micro_cents is not None
    fees = [(f.member_id, FeeKind(f.kind), int(f.amount_micro_cents))
            for f in db.scalars(select(FeeRecord).where(FeeRecord.operation_id == movement_id).order_by(FeeRecord.id))]
    _book_cash(db, MovementKind.OPEN_REFUND, _cash_id(MovementKind.OPEN_REFUND, movement_id, mv.from_member,
                                                      mv.to_member),
               mv.from_member, mv.to_member, int(mv.value_micro_cents), int(mv.tokens_from), mv.customer_id,
               fees, reverse=True)


def _refund_view(refund_id: str, payment: OpenPayment) -> dict[str, Any]:
    return {"refund_id": refund_id, "operation_id": payment.operation_id, "status": payment.status,
            "units": int(payment.units)}


def receive_refund(sender: str, message_id: str, body: Any) -> Answer:
    return outbox.receive(write_session, MspInboxMessage, sender=sender, message_id=message_id, body=body,
                          apply=outbox.applied(lambda db: refund(db, sender, body, message_id)))
