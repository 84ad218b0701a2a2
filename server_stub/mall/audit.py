"""The network audit (DESIGN.md "Audit"; `tokenrent-server msp admin audit`):
after quiescence, read every member's signed GET /v1/mall/audit and check
against the MSP's own records that

- every book sums to zero: the MSP's (per asset) and each member's ledger;
- each member's exchange totals and circulation equal the MSP's token
  records (claim 14): the tokens that left it by exchanges, those it issued
  for them, and the tokens its users hold;
- every completed movement moved exactly its amounts at both ends (claim 31):
  the home member posted its exchange with those amounts, the other member
  applied the issue with those tokens; every failed one moved nothing;
- nothing is pending: no movement, no message in any outbox;
- open payments (`open_problems`, the MSP's own records only): no lot below zero,
  nothing held past its hold (+ a grace for the scheduler's round), every
  certificate's change lot made once and only for a confirmed payment, the pending
  accounts of an ended payment at zero and of a held one holding its portions.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..db import read_session
from ..models.base import utcnow
from ..network.types import Unreachable
from . import books
from .models import (
    MallAccount, MallTransfer, Member, Movement, MspOutboxMessage, OpenLot, OpenPayment, OpenPaymentPortion,
    TokenRecord,
)
from .vocabulary import BookEntryKind, MovementKind, MovementStatus, OpenPaymentStatus, PortionKind

# A hold is voided by the settlement scheduler's round (at most a minute late); past this it is a fault.
HOLD_GRACE = timedelta(minutes=5)


@dataclass
class AuditReport:
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    members: int = 0
    completed: int = 0
    failed: int = 0

    def problem(self, text: str) -> None:
        self.ok = False
        self.problems.append(text)


def run_audit() -> AuditReport:
    from .saga import client   # the MSP's signed client

    report = AuditReport()
    with read_session() as db:
        members = {m.member_id: m.base_url.rstrip("/") for m in db.scalars(select(Member))}
        records = {r.member_id: (r.exchanged_out, r.exchanged_in, r.circulation) for r in db.scalars(select(TokenRecord))}
        # exchanges: open payments' movements are the MSP's alone (open_problems checks them)
        movements = db.scalars(select(Movement).where(Movement.kind == MovementKind.EXCHANGE)).all()
        pending_out = db.scalar(select(func.count()).select_from(MspOutboxMessage)
                                .where(MspOutboxMessage.status == "pending"))
        checked = books.verify(db)
        for problem in open_problems(db):
            report.problem(problem)
    report.members = len(members)
    if not checked.ok:
        report.problem(f"the MSP's books do not balance: {checked}")
    if pending_out:
        report.problem(f"{pending_out} MSP outbox messages are still pending")
    seen: dict[str, dict[str, Any]] = {}
    for member_id, base_url in sorted(members.items()):
        try:
            answer = client().send("GET", base_url + "/v1/mall/audit")
        except Unreachable as e:
            report.problem(f"{member_id} did not answer the audit: {e}")
            continue
        if answer.status != 200 or not isinstance(answer.body, dict):
            report.problem(f"{member_id} refused the audit: {answer.status}")
            continue
        seen[member_id] = answer.body
        if answer.body.get("outbox_pending"):
            report.problem(f"{member_id} has {answer.body['outbox_pending']} outbox messages still pending")
        if not answer.body.get("ledger_ok"):
            report.problem(f"{member_id}'s ledger does not balance: {answer.body.get('ledger_totals')}")
        out, came, circulation = records.get(member_id, (0, 0, 0))
        if answer.body.get("circulation_tokens") != circulation:
            report.problem(f"{member_id}: its users hold {answer.body.get('circulation_tokens')} tokens, "
                           f"the MSP's record says {circulation}")
        if answer.body.get("exchanged_out_tokens") != out:
            report.problem(f"{member_id}: {answer.body.get('exchanged_out_tokens')} tokens left by exchanges, "
                           f"the MSP's record says {out}")
        if answer.body.get("exchanged_in_tokens") != came:
            report.problem(f"{member_id}: {answer.body.get('exchanged_in_tokens')} tokens issued for exchanges, "
                           f"the MSP's record says {came}")
    exchanges = {x["operation_id"]: (member_id, x) for member_id, body in seen.items()
                 for x in body.get("exchanges", [])}
    issues = {i["operation_id"]: (member_id, i) for member_id, body in seen.items() for i in body.get("issues", [])}
    for mv in movements:
        home = exchanges.get(mv.operation_id)
        issued = issues.get(mv.operation_id)
        if mv.status == MovementStatus.PENDING:
            report.problem(f"movement {mv.operation_id} is still pending")
            continue
        if mv.from_member in seen:
            if home is None or home[0] != mv.from_member:
                report.problem(f"movement {mv.operation_id}: {mv.from_member} has no such exchange")
            elif (home[1]["status"], home[1]["tokens_from"], home[1]["tokens_to"]) != (
                    mv.status, mv.tokens_from, mv.tokens_to):
                report.problem(f"movement {mv.operation_id}: {mv.from_member} says {home[1]}, the MSP says "
                               f"{mv.status} {mv.tokens_from} -> {mv.tokens_to}")
        if mv.status == MovementStatus.COMPLETED:
            report.completed += 1
            if mv.to_member in seen and (issued is None or issued[0] != mv.to_member
                                         or issued[1]["tokens"] != mv.tokens_to):
                report.problem(f"movement {mv.operation_id}: {mv.to_member} did not issue {mv.tokens_to} tokens")
        else:
            report.failed += 1
            if issued is not None:
                report.problem(f"movement {mv.operation_id} failed, yet {issued[0]} issued its tokens")
    known = {mv.operation_id for mv in movements}
    for operation_id, (member_id, x) in exchanges.items():
        if x["status"] == "pending":
            report.problem(f"{member_id}'s exchange {operation_id} is still pending")
        elif operation_id not in known and x["status"] == "completed":
            report.problem(f"{member_id}'s exchange {operation_id} completed without a movement at the MSP")
    for operation_id, (member_id, _i) in issues.items():
        if operation_id not in known:
            report.problem(f"{member_id} issued tokens for {operation_id}, unknown to the MSP")
    return report


def open_problems(db: Session, now: datetime | None = None) -> list[str]:
    """What is wrong with the MSP's open tokens and payments (books.verify covers
    their sums): each problem as a sentence, none when all is well."""
    now = now or utcnow()
    problems: list[str] = []
    for code, bal in db.execute(select(MallAccount.code, MallAccount.balance).join(
            OpenLot, OpenLot.account_id == MallAccount.id).where(MallAccount.balance < 0)):
        problems.append(f"open lot account {code} is below zero ({bal})")
    balances = {code: int(bal) for code, bal in db.execute(
        select(MallAccount.code, MallAccount.balance).where(MallAccount.code.like("pending:%")))}
    portions: dict[int, list[OpenPaymentPortion]] = defaultdict(list)
    for row in db.scalars(select(OpenPaymentPortion).order_by(OpenPaymentPortion.id)):
        portions[row.payment_id].append(row)
    change_lots = {lot.origin: lot for lot in db.scalars(select(OpenLot).where(OpenLot.origin.like("change:%")))}
    made_with: dict[int, list[int]] = defaultdict(list)   # a lot's issue postings: exactly one, of its change
    for account_id, amount in db.execute(
            select(MallTransfer.to_account_id, MallTransfer.amount)
            .where(MallTransfer.kind == BookEntryKind.OPEN_TOKEN_ISSUE,
                   MallTransfer.to_account_id.in_([lot.account_id for lot in change_lots.values()]))):
        made_with[account_id].append(int(amount))
    expected_change: set[str] = set()
    for p in db.scalars(select(OpenPayment).order_by(OpenPayment.id)):
        held: dict[int, int] = defaultdict(int)
        for row in portions[p.id]:
            held[row.lot_id] += int(row.tokens)
        if p.status == OpenPaymentStatus.AUTHORIZED and p.hold_expires_at + HOLD_GRACE < now:
            problems.append(f"open payment {p.operation_id} is still held past its hold (+ grace)")
        if sum(int(r.tokens) for r in portions[p.id] if r.kind == PortionKind.PORTION) != p.units:
            problems.append(f"open payment {p.operation_id}: its portions do not sum to its {p.units} units")
        for lot_id, tokens in sorted(held.items()):
            code = f"pending:{p.operation_id}:{lot_id}"
            want = tokens if p.status == OpenPaymentStatus.AUTHORIZED else 0
            if balances.get(code, 0) != want:
                problems.append(f"{code} holds {balances.get(code, 0)}, not {want} ({p.status} payment)")
        for row in portions[p.id]:
            if row.kind != PortionKind.CHANGE:
                continue
            origin = f"change:{p.operation_id}:{row.lot_id}"
            lot = change_lots.get(origin)
            if p.status in (OpenPaymentStatus.CONFIRMED, OpenPaymentStatus.REFUNDED):
                expected_change.add(origin)
                if lot is None:
                    problems.append(f"open payment {p.operation_id}: no change lot {origin}")
                elif made_with.get(lot.account_id) != [int(row.tokens)]:
                    problems.append(f"change lot {origin} was not made once with its {row.tokens} tokens: "
                                    f"{made_with.get(lot.account_id)}")
    for origin in sorted(set(change_lots) - expected_change):
        problems.append(f"change lot {origin} belongs to no confirmed payment's change")
    return problems
