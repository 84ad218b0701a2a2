"""Settlement (FIG 15 steps 9-10, FIG 16 clearing; docs/mall.md "Settlement").

One period is open at a time. Closing it (the operator's `close-period`, or
the scheduler every `msp_settlement_seconds`) takes every completed movement
and every fee and notice not yet settled, in 1/100 cents:

- compensation: the member whose tokens left owes the issuing member the value;
- exchange fees (FeeRecord.member_id pays them out of what it is owed): the
  service charge to the member whose tokens left, royalty and fixed fee to the MSP;
- FIG 13 royalties on sales, less what the deposit paid at once: to the MSP;

adds each member's residue carried from its last statement, and rounds with
network.money.round_positions: one Statement per member and the MSP's line
(PeriodSummary), summing to zero cents exactly (refused otherwise). The books
get the settlement postings (each member's position account then holds its
net; the MSP's goes to its earnings), and one payout instruction per member
with a net: paid when positive, debited when negative, through the `Bank`
(a simulated one here, behind a small interface like services/cards.py).
When the bank has taken an instruction its posting clears the position.

Everything runs in the caller's write transaction; closing locks the open
period's row, so two processes closing at once close it once."""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..core.config import get_settings
from ..db import write_session
from ..logs import log
from ..models.base import utcnow
from ..network.money import UNITS_PER_CENT, round_positions
from ..services.errors import Conflict, Invalid, NotFound
from . import books, notifications
from .models import (
    FeeRecord, Member, Movement, PayoutInstruction, Period, PeriodSummary, SettledMovement, Statement, TokenNotice,
)
from .vocabulary import (
    CENT_ASSET, MSP_ID, BookEntryKind, FeeKind, MovementKind, MovementStatus, PayoutDirection, PayoutStatus,
    PeriodStatus,
)

MSP_POSITION = "msp:position"


# ---------------------------------------------------------------- the bank

@dataclass(frozen=True)
class BankResult:
    reference: str


class Bank(Protocol):
    def transfer(self, instruction_key: str, member_id: str, direction: PayoutDirection, cents: int) -> BankResult:
        """Pay (or debit) a member; the same key again is the same transfer, never a second one."""
        ...


class SimulatedBank:
    """Accepts every instruction; its reference is derived from the key, so a
    retried instruction gets the first answer."""

    def transfer(self, instruction_key: str, member_id: str, direction: PayoutDirection, cents: int) -> BankResult:
        if cents < 1:
            raise Invalid("a bank transfer moves at least 1 cent")
        return BankResult("sim-" + hashlib.sha256(instruction_key.encode()).hexdigest()[:20])


_bank: Bank = SimulatedBank()


def bank() -> Bank:
    return _bank


# ---------------------------------------------------------------- periods

position_account = books.position_account


def _open_period_id(db: Session) -> int | None:
    return db.scalar(select(Period.id).where(Period.status == PeriodStatus.OPEN))


def open_period(db: Session, now: datetime | None = None) -> Period:
    """The open period, opened on first use (one, even when two processes ask at once)."""
    period_id = _open_period_id(db)
    if period_id is None:   # the first period starts when the first member joined
        first_join = db.scalar(select(Member.joined_at).order_by(Member.joined_at).limit(1))
        try:
            with db.begin_nested():
                db.add(Period(starts_at=first_join or now or utcnow(), status=PeriodStatus.OPEN))
        except IntegrityError:   # another process opened it first
            pass
        period_id = _open_period_id(db)
    assert period_id is not None
    period = db.get(Period, period_id)
    assert period is not None
    return period


@dataclass
class _Party:
    owed_cents: int = 0
    owing_cents: int = 0
    rounding_gain_cents: int = 0
    service_charge_earned_units: int = 0
    exchange_fees_paid_units: int = 0
    royalty_units: int = 0
    royalty_paid_from_deposit_cents: int = 0
    movements: int = 0
    notices: int = 0
    open_fraction_units: int = 0     # open payments' value below a cent (their whole cents were posted)
    open_movements: int = 0

    @property
    def royalty_invoiced_units(self) -> int:
        return self.royalty_units - self.royalty_paid_from_deposit_cents * UNITS_PER_CENT

    @property
    def position_units(self) -> int:
        return ((self.owed_cents - self.owing_cents) * UNITS_PER_CENT + self.service_charge_earned_units
                - self.exchange_fees_paid_units - self.royalty_invoiced_units + self.open_fraction_units)


def _sign(mv: Movement) -> int:
    """+1 for what a movement makes its from_member owe, -1 for an open refund (it gives it back)."""
    return -1 if mv.kind == MovementKind.OPEN_REFUND else 1


def _toward_zero(units: int) -> int:
    return units // UNITS_PER_CENT if units >= 0 else -((-units) // UNITS_PER_CENT)


def _carried_in(db: Session, member_id: str) -> int:
    return int(db.scalar(select(Statement.residue_micro_cents).where(Statement.member_id == member_id)
                         .order_by(Statement.period_id.desc()).limit(1)) or 0)


def _msp_carried_in(db: Session) -> int:
    return int(db.scalar(select(PeriodSummary.msp_residue_micro_cents)
                         .order_by(PeriodSummary.period_id.desc()).limit(1)) or 0)


def close_period(db: Session, now: datetime | None = None, *, only_if_due: bool = False) -> Period | None:
    """Close the open period (the operator; or the scheduler with `only_if_due`:
    only when it is `msp_settlement_seconds` old). Returns the period closed,
    or None when there was nothing to close (not due, or another process closed it)."""
    now = now or utcnow()
    candidate = open_period(db, now)
    period = db.get(Period, candidate.id, with_for_update=True, populate_existing=True)
    if period is None or period.status != PeriodStatus.OPEN:
        return None
    if only_if_due and now < period.starts_at + timedelta(seconds=get_settings().msp_settlement_seconds):
        return None
    settled = select(SettledMovement.movement_id)
    movements = db.scalars(select(Movement).where(Movement.status == MovementStatus.COMPLETED,
                                                  Movement.id.not_in(settled)).order_by(Movement.id)).all()
    notices = db.scalars(select(TokenNotice).where(TokenNotice.period_id.is_(None))
                         .order_by(TokenNotice.id)).all()
    by_operation = {mv.operation_id: mv for mv in movements}
    notice_ops = {n.operation_id for n in notices}
    fees = [f for f in db.scalars(select(FeeRecord).where(FeeRecord.period_id.is_(None)).order_by(FeeRecord.id))
            if f.operation_id in by_operation or f.operation_id in notice_ops]
    all_members = {m.member_id: m for m in db.scalars(select(Member).order_by(Member.member_id))}
    parties: dict[str, _Party] = defaultdict(_Party)
    msp_fee_units = 0
    for mv in movements:
        payer, payee = parties[mv.from_member], parties[mv.to_member]
        payer.movements += 1
        payee.movements += 1
        if mv.kind == MovementKind.EXCHANGE:
            payer.owing_cents += mv.value_cents
            payee.owed_cents += mv.value_cents
            # token values never change at the MSP: what left was worth tokens_from x its value
            payer.rounding_gain_cents += mv.tokens_from * all_members[mv.from_member].token_value_cents - mv.value_cents
            continue
        # open tokens accepted (FIG 18 step 7): the whole cents were posted at confirm, the
        # sub-cent rest counts here; a refund is the same pair and value, the other way
        sign = _sign(mv)
        fraction = int(mv.value_micro_cents or 0) - mv.value_cents * UNITS_PER_CENT
        if sign > 0:
            payer.owing_cents += mv.value_cents
            payee.owed_cents += mv.value_cents
        else:
            payer.owed_cents += mv.value_cents
            payee.owing_cents += mv.value_cents
        payer.open_fraction_units -= sign * fraction
        payee.open_fraction_units += sign * fraction
        payer.open_movements += 1
        payee.open_movements += 1
    for f in fees:
        of = by_operation.get(f.operation_id)
        if of is None:      # a notice's royalty: counted with the notice below
            continue
        amount = _sign(of) * f.amount_micro_cents    # a refund gives its payment's fees back
        parties[f.member_id].exchange_fees_paid_units += amount
        if f.kind == FeeKind.SERVICE_CHARGE:
            parties[of.from_member].service_charge_earned_units += amount
        else:
            msp_fee_units += amount
    for n in notices:
        p = parties[n.member_id]
        p.notices += 1
        p.royalty_units += n.royalty_micro_cents
        p.royalty_paid_from_deposit_cents += n.paid_from_deposit_cents
    msp_royalty_units = sum(p.royalty_invoiced_units for p in parties.values())
    units = {member_id: parties[member_id].position_units for member_id in all_members}
    units[MSP_ID] = msp_fee_units + msp_royalty_units
    carried = {member_id: _carried_in(db, member_id) for member_id in all_members}
    carried[MSP_ID] = _msp_carried_in(db)
    lines = round_positions(units, carried, house=MSP_ID)
    if sum(line.net_cents for line in lines.values()) != 0:
        raise Conflict("the period's nets do not sum to zero: nothing was closed", reason="unbalanced_period")
    for member_id in all_members:
        p, line = parties[member_id], lines[member_id]
        db.add(Statement(
            period_id=period.id, member_id=member_id, owed_cents=p.owed_cents, owing_cents=p.owing_cents,
            fees_cents=_toward_zero(p.exchange_fees_paid_units - p.service_charge_earned_units),
            rounding_gain_cents=p.rounding_gain_cents, net_cents=line.net_cents,
            residue_micro_cents=line.carried_units, details={
                "position_micro_cents": p.position_units, "carried_in_micro_cents": carried[member_id],
                "service_charge_earned_micro_cents": p.service_charge_earned_units,
                "exchange_fees_paid_micro_cents": p.exchange_fees_paid_units,
                "royalty_micro_cents": p.royalty_units,
                "royalty_paid_from_deposit_cents": p.royalty_paid_from_deposit_cents,
                "royalty_invoiced_micro_cents": p.royalty_invoiced_units,
                "movements": p.movements, "notices": p.notices, "open_movements": p.open_movements,
                "open_fraction_micro_cents": p.open_fraction_units}))
    msp_line = lines[MSP_ID]
    db.add(PeriodSummary(period_id=period.id, msp_net_cents=msp_line.net_cents,
                         msp_residue_micro_cents=msp_line.carried_units,
                         members_net_cents=-msp_line.net_cents, details={
                             "position_micro_cents": units[MSP_ID], "carried_in_micro_cents": carried[MSP_ID],
                             "exchange_fees_micro_cents": msp_fee_units,
                             "royalty_invoiced_micro_cents": msp_royalty_units,
                             "movements": len(movements), "notices": len(notices)}))
    for mv in movements:
        db.add(SettledMovement(movement_id=mv.id, period_id=period.id))
    for f in fees:
        f.period_id = period.id
    for n in notices:
        n.period_id = period.id
    _post_settlement(db, period.id, {m: (lines[m].net_cents, parties[m]) for m in all_members},
                     msp_line.net_cents)
    period.status, period.ends_at, period.closed_at = PeriodStatus.CLOSED, now, utcnow()
    db.flush()
    db.add(Period(starts_at=now, status=PeriodStatus.OPEN))
    db.flush()
    return period


def _post(db: Session, source: Any, dest: Any, amount: int, kind: BookEntryKind, operation_id: str) -> None:
    """A signed amount between two accounts: negative moves it the other way."""
    if amount > 0:
        books.post(db, source, dest, amount, kind=kind, operation_id=operation_id)
    elif amount < 0:
        books.post(db, dest, source, -amount, kind=kind, operation_id=operation_id)


def _operation(period_id: int, what: str) -> str:
    """A 36-character id for the period's postings (MallTransfer.operation_id)."""
    return str(uuid.uuid5(notifications.NOTICE_NAMESPACE, f"period:{period_id}:{what}"))


def _post_settlement(db: Session, period_id: int, nets: dict[str, tuple[int, _Party]], msp_net: int) -> None:
    """Fees and royalties in whole cents into the positions (each member's then
    holds its net for this period), the MSP's share to its earnings, and one
    payout instruction per member with a net."""
    msp_position = books.account(db, MSP_POSITION, CENT_ASSET, negative_allowed=True)
    for member_id, (net, party) in nets.items():
        adjustment = net - (party.owed_cents - party.owing_cents)   # what the compensation already posted
        _post(db, msp_position, position_account(db, member_id), adjustment, BookEntryKind.SETTLEMENT,
              _operation(period_id, member_id))
        if net:
            direction = PayoutDirection.PAY if net > 0 else PayoutDirection.DEBIT
            db.add(PayoutInstruction(period_id=period_id, member_id=member_id, direction=direction, cents=abs(net),
                                     instruction_key=f"payout:{period_id}:{member_id}",
                                     status=PayoutStatus.PENDING))
    _post(db, msp_position, notifications.earnings_account(db), msp_net, BookEntryKind.SETTLEMENT,
          _operation(period_id, MSP_ID))


# ---------------------------------------------------------------- payouts

def send_payouts(db: Session, period_id: int | None = None, the_bank: Bank | None = None) -> list[PayoutInstruction]:
    """Send the pending payout instructions (of one period, or all) to the
    bank; each taken one is recorded with its reference and clears the
    member's position in the books. A retry sends the same key again."""
    query = select(PayoutInstruction).where(PayoutInstruction.status == PayoutStatus.PENDING)
    if period_id is not None:
        query = query.where(PayoutInstruction.period_id == period_id)
    sent = []
    for pi in db.scalars(query.order_by(PayoutInstruction.id).with_for_update()).all():
        result = (the_bank or bank()).transfer(pi.instruction_key, pi.member_id, PayoutDirection(pi.direction),
                                               pi.cents)
        position = position_account(db, pi.member_id)
        outside = notifications.bank_account(db)
        op = _operation(pi.period_id, f"payout:{pi.member_id}")
        if pi.direction == PayoutDirection.PAY:
            books.post(db, position, outside, pi.cents, kind=BookEntryKind.PAYOUT, operation_id=op)
        else:
            books.post(db, outside, position, pi.cents, kind=BookEntryKind.PAYOUT, operation_id=op)
        pi.status, pi.bank_reference, pi.sent_at = PayoutStatus.SENT, result.reference, utcnow()
        sent.append(pi)
    db.flush()
    return sent


# ---------------------------------------------------------------- statements

STATEMENT_FIELDS = ("id", "period_id", "member_id", "starts_at", "ends_at", "owed_cents", "owing_cents", "fees_cents",
                    "royalties_cents", "rounding_gain_cents", "net_cents", "carried_in_micro_cents",
                    "residue_micro_cents", "payout_direction", "payout_cents", "payout_status", "bank_reference")


def statement_view(db: Session, st: Statement) -> dict[str, Any]:
    period = db.get(Period, st.period_id)
    assert period is not None
    payout = db.scalar(select(PayoutInstruction).where(PayoutInstruction.period_id == st.period_id,
                                                       PayoutInstruction.member_id == st.member_id))
    return {"id": st.id, "period_id": st.period_id, "member_id": st.member_id,
            "starts_at": period.starts_at.isoformat(), "ends_at": period.ends_at.isoformat() if period.ends_at else None,
            "owed_cents": st.owed_cents, "owing_cents": st.owing_cents, "fees_cents": st.fees_cents,
            "royalties_cents": _toward_zero(int(st.details.get("royalty_invoiced_micro_cents", 0))),
            "rounding_gain_cents": st.rounding_gain_cents, "net_cents": st.net_cents,
            "carried_in_micro_cents": int(st.details.get("carried_in_micro_cents", 0)),
            "residue_micro_cents": st.residue_micro_cents,
            "payout_direction": payout.direction if payout else None, "payout_cents": payout.cents if payout else 0,
            "payout_status": payout.status if payout else None,
            "bank_reference": payout.bank_reference if payout else None, "details": st.details}


def msp_view(db: Session, summary: PeriodSummary) -> dict[str, Any]:
    period = db.get(Period, summary.period_id)
    assert period is not None
    return {"id": None, "period_id": summary.period_id, "member_id": MSP_ID, "starts_at": period.starts_at.isoformat(),
            "ends_at": period.ends_at.isoformat() if period.ends_at else None, "owed_cents": 0, "owing_cents": 0,
            "fees_cents": _toward_zero(int(summary.details.get("exchange_fees_micro_cents", 0))),
            "royalties_cents": _toward_zero(int(summary.details.get("royalty_invoiced_micro_cents", 0))),
            "rounding_gain_cents": 0, "net_cents": summary.msp_net_cents,
            "carried_in_micro_cents": int(summary.details.get("carried_in_micro_cents", 0)),
            "residue_micro_cents": summary.msp_residue_micro_cents, "payout_direction": None, "payout_cents": 0,
            "payout_status": None, "bank_reference": None, "details": summary.details}


def statements(db: Session, *, member_id: str | None = None, period_id: int | None = None,
               with_msp: bool = False) -> list[dict[str, Any]]:
    """Closed periods' statements, oldest first (a member sees only its own);
    the operator may add the MSP's line of each period."""
    query = select(Statement).order_by(Statement.period_id, Statement.member_id)
    if member_id is not None:
        query = query.where(Statement.member_id == member_id)
    if period_id is not None:
        query = query.where(Statement.period_id == period_id)
    out = [statement_view(db, st) for st in db.scalars(query)]
    if with_msp:
        summaries = select(PeriodSummary).order_by(PeriodSummary.period_id)
        if period_id is not None:
            summaries = summaries.where(PeriodSummary.period_id == period_id)
        out += [msp_view(db, s) for s in db.scalars(summaries)]
        out.sort(key=lambda v: (v["period_id"], v["member_id"] == MSP_ID, v["member_id"]))
    return out


def member_statement(db: Session, member_id: str, statement_id: int) -> dict[str, Any]:
    st = db.get(Statement, statement_id)
    if st is None or st.member_id != member_id:   # another member's statement is not there for you
        raise NotFound(f"no statement {statement_id}")
    return statement_view(db, st)


def as_csv(rows: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=STATEMENT_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in STATEMENT_FIELDS})
    return out.getvalue()


# ---------------------------------------------------------------- the scheduler (one per MSP process)

class Scheduler:
    """Closes the period when it is due and sends its payouts. Every MSP
    process runs one; the period's lock makes only one of them close it."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _every(self) -> float:
        return max(1.0, min(60.0, get_settings().msp_settlement_seconds / 10))

    def run_once(self) -> Period | None:
        from . import open_payments   # here: open_payments books into this module's positions

        with write_session() as db:   # open-token holds past their time are voided (docs/mall.md)
            voided = open_payments.expire_holds(db)
        if voided:
            log("open payment holds expired", voided=voided)
        with write_session() as db:
            closed = close_period(db, only_if_due=True)
            closed_id = closed.id if closed is not None else None
        with write_session() as db:
            send_payouts(db)
        if closed_id is not None:
            log("settlement period closed", period_id=closed_id)
        return closed

    def _loop(self) -> None:
        while not self._stop.wait(self._every()):
            try:
                self.run_once()
            except Exception as e:   # the database is away for a while: try again next round
                log("settlement round failed", logging.ERROR, error=repr(e)[:300])

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="msp-settlement", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
