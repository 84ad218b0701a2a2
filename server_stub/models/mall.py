"""This vendor's side of the mall network (docs/mall.md): its membership, the
accounts of users from other members, exchange quotes and exchanges."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..network.outbox import InboxColumns, OutboxColumns
from ..vocabulary import ExchangeStatus
from .base import Amount, Base, UTCDateTime, utcnow


class MallMembership(Base):
    """One row (id 1) once the vendor has joined a mall: who it is there and
    the MSP it trusts, with the last directory it read from the MSP."""

    __tablename__ = "mall_membership"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64))
    msp_url: Mapped[str] = mapped_column(String(300))
    msp_key: Mapped[str] = mapped_column(String(100))          # "ed25519:..." pinned at joining
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    directory_version: Mapped[int] = mapped_column(Integer, default=0)
    directory_json: Mapped[str] = mapped_column(Text, default="")
    directory_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class MallLink(Base):
    """A local account that stands for a user registered at another member
    (created on first use, no password): `home_member_id` and its user id."""

    __tablename__ = "mall_links"
    __table_args__ = (UniqueConstraint("home_member_id", "home_user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    home_member_id: Mapped[str] = mapped_column(String(64))
    home_user_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExchangeQuote(Base):
    """A rate locked for one user until `expires_at` (POST /v1/exchange-quotes)."""

    __tablename__ = "exchange_quotes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    to_member_id: Mapped[str] = mapped_column(String(64))
    tokens_asked: Mapped[int] = mapped_column(Amount)
    tokens_from: Mapped[int] = mapped_column(Amount)
    tokens_to: Mapped[int] = mapped_column(Amount)
    value_from_cents: Mapped[int] = mapped_column(Integer)
    value_to_cents: Mapped[int] = mapped_column(Integer)
    value_cents: Mapped[int] = mapped_column(Amount)
    fees_cents: Mapped[int] = mapped_column(Amount)
    directory_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Exchange(Base):
    """Token-A of a user here becoming Token-B at another member (FIG 15):
    pending while the saga runs, then completed or failed (the hold posted or
    voided). The id is the operation's global id across the network."""

    __tablename__ = "exchanges"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    quote_id: Mapped[str] = mapped_column(ForeignKey("exchange_quotes.id"), unique=True)
    to_member_id: Mapped[str] = mapped_column(String(64))
    tokens_from: Mapped[int] = mapped_column(Amount)
    tokens_to: Mapped[int] = mapped_column(Amount)
    value_cents: Mapped[int] = mapped_column(Amount)
    hold_id: Mapped[int] = mapped_column(ForeignKey("ledger_holds.id"))
    status: Mapped[str] = mapped_column(String(16), default=ExchangeStatus.PENDING)
    reason: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class MallAssertionUse(Base):
    """An assertion from another member, spent: each `jti` opens one session,
    once (kept until the assertion would have expired anyway)."""

    __tablename__ = "mall_assertion_uses"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class MallOutboxMessage(OutboxColumns, Base):
    """Messages this vendor sends to the MSP (server_stub/network/outbox.py)."""

    __tablename__ = "mall_outbox"


class MallInboxMessage(InboxColumns, Base):
    """Messages this vendor received, with the answer it gave (first answer final)."""

    __tablename__ = "mall_inbox"
