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
- nothing is pending: no movement, no message in any outbox.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from ..db import read_session
from ..network.types import Unreachable
from . import books
from .models import Member, Movement, MspOutboxMessage, TokenRecord
from .vocabulary import MovementStatus


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
        movements = db.scalars(select(Movement)).all()
        pending_out = db.scalar(select(func.count()).select_from(MspOutboxMessage)
                                .where(MspOutboxMessage.status == "pending"))
        checked = books.verify(db)
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
