"""Rate-limit state (services/rate_limits.py): one row per counted key."""
from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class RateLimit(Base):
    """GCRA state of one key, e.g. ("sign_in:address", "203.0.113.7").

    `tat_ms` is the key's "theoretical arrival time" (Unix milliseconds): each
    counted hit pushes it one emission interval further; a key is limited
    while it lies more than the burst tolerance in the future. A row whose
    tat_ms has passed means the same as no row, so it can be deleted."""

    __tablename__ = "rate_limits"

    bucket: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    tat_ms: Mapped[int] = mapped_column(BigInteger, index=True)
