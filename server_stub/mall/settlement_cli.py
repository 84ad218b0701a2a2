"""`tokenrent-server msp admin ...` commands for FIG 13 and settlement:
deposits, token records, periods, statements and payouts. Registered in the
MSP's own command table (commands.MSP_COMMANDS); cli.py imports this module."""
from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..admin_registry import arg
from ..services.errors import Conflict
from . import notifications, records, settlement
from .commands import command
from .models import Member, Period, TokenRecord


@command("deposit", "record cash a member paid into its deposit at the MSP (royalties in deposit mode "
                    "are debited from it at once)", arg("member"), arg("cents", type=int))
def _deposit(db: Session, a: argparse.Namespace) -> dict[str, Any]:
    return notifications.record_deposit(db, a.member, a.cents)


@command("token-records", "each member's token record (claim 14): issued, spent, exchanged in and out, "
                          "circulation, and its deposit", arg("member", nargs="?"))
def _token_records(db: Session, a: argparse.Namespace) -> list[dict[str, Any]]:
    query = select(Member).order_by(Member.member_id)
    if a.member:
        query = query.where(Member.member_id == a.member)
    out = []
    for m in db.scalars(query):
        rec = db.get(TokenRecord, m.member_id)
        counts = {f: getattr(rec, f) if rec else 0 for f in records.TOKEN_COUNTS}
        deposit = notifications.find_deposit(db, m.member_id)
        out.append({"member_id": m.member_id, **counts, "circulation": rec.circulation if rec else 0,
                    "deposit_cents": int(deposit.balance) if deposit else 0})
    return out


@command("periods", "the settlement periods (the open one last)")
def _periods(db: Session, a: argparse.Namespace) -> list[dict[str, Any]]:
    settlement.open_period(db)
    return [{"id": p.id, "status": p.status, "starts_at": p.starts_at, "ends_at": p.ends_at,
             "closed_at": p.closed_at} for p in db.scalars(select(Period).order_by(Period.id))]


@command("close-period", "close the open settlement period now: statements, the books' settlement postings "
                         "and payout instructions (sent with send-payouts, or by the MSP's scheduler)",
         arg("--send", action="store_true", help="also send the payout instructions to the bank"))
def _close_period(db: Session, a: argparse.Namespace) -> dict[str, Any]:
    closed = settlement.close_period(db)
    if closed is None:
        raise Conflict("another process closed the period just now", reason="already_closed")
    if a.send:
        settlement.send_payouts(db, closed.id)
    return {"period_id": closed.id, "statements": settlement.statements(db, period_id=closed.id, with_msp=True)}


@command("send-payouts", "send the pending payout instructions to the bank (each once)",
         arg("--period", type=int))
def _send_payouts(db: Session, a: argparse.Namespace) -> list[dict[str, Any]]:
    return [{"period_id": p.period_id, "member_id": p.member_id, "direction": p.direction, "cents": p.cents,
             "bank_reference": p.bank_reference} for p in settlement.send_payouts(db, a.period)]


@command("statements", "the closed periods' statements with the MSP's line (JSON; --csv: CSV)",
         arg("--period", type=int), arg("--member"), arg("--csv", action="store_true", help="print CSV"))
def _statements(db: Session, a: argparse.Namespace) -> Any:
    rows = settlement.statements(db, member_id=a.member, period_id=a.period, with_msp=a.member is None)
    return settlement.as_csv(rows).rstrip("\n") if a.csv else rows
