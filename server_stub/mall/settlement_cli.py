"""`tokenrent-server msp admin ...` commands for FIG 13 and settlement:
deposits, token records, periods, statements and payouts. Registered in the
MSP's own command table (admin_cli.MSP_COMMANDS), which imports this module."""
from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..admin_registry import arg
from .admin_cli import command
from . import notifications
from .models import Member, TokenRecord


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
        counts = {f: getattr(rec, f) if rec else 0 for f in ("issued", "spent", "exchanged_in", "exchanged_out",
                                                                "expired")}
        deposit = notifications.find_deposit(db, m.member_id)
        out.append({"member_id": m.member_id, **counts, "circulation": rec.circulation if rec else 0,
                    "deposit_cents": int(deposit.balance) if deposit else 0})
    return out
