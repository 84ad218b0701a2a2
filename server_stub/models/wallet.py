"""The vendor's token policy, bundles and token purchases (FIG 3, 4, 13)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Amount, Base, UTCDateTime, utcnow

# Payment methods and purchase statuses: server_stub.vocabulary.


class TokenPolicy(Base):
    """A single row (id 1): the vendor's settings."""

    __tablename__ = "token_policy"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_price_cents: Mapped[int] = mapped_column(Integer, default=10)
    min_tokens: Mapped[int] = mapped_column(Integer, default=100)          # MT
    preferred_discount_bp: Mapped[int] = mapped_column(Integer, default=0)  # basis points
    registration_grant_tokens: Mapped[int] = mapped_column(Integer, default=0)
    gift_certificate_days: Mapped[int] = mapped_column(Integer, default=365, server_default="365")  # open tokens
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Bundle(Base):
    __tablename__ = "token_bundles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    tokens: Mapped[int] = mapped_column(Integer)
    discount_bp: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class TokenPurchase(Base):
    __tablename__ = "token_purchases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    tokens: Mapped[int] = mapped_column(Integer)
    bundle_id: Mapped[int | None] = mapped_column(ForeignKey("token_bundles.id"), nullable=True)
    method: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    gross_cents: Mapped[int] = mapped_column(Amount)
    discount_bp: Mapped[int] = mapped_column(Integer, default=0)
    amount_cents: Mapped[int] = mapped_column(Amount)
    invoice_number: Mapped[str | None] = mapped_column(String(32), unique=True, nullable=True)
    card_brand: Mapped[str | None] = mapped_column(String(16), nullable=True)
    card_last4: Mapped[str | None] = mapped_column(String(4), nullable=True)
    processor_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decline_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    credited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
