"""`tokenrent-server msp admin backups`: each member's latest backup (FIG 14,
backups.py), on the MSP's command table."""
from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.orm import Session

from . import backups
from .commands import command


@command("backups", "each member's latest backup: ledger head, taken_at, size (FIG 14)")
def _backups(db: Session, a: argparse.Namespace) -> list[dict[str, Any]]:
    return backups.all_backups(db)
