"""This vendor's side of open tokens (issue 12, docs/mall.md "Open tokens"):
what its users bought of them (the MSP keeps the tokens themselves) and the
open part of an order (the MSP's authorization, then its result)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Amount, Base, UTCDateTime, utcnow


class OpenTokenPurchase(Base):
    """A user's purchase of open tokens or of a gift certificate, sold here for
    the network (POST /v1/open-token-purchases): paid like a token purchase,
    then issued by the MSP (`operation_id` is the MSP's operation)."""

    __tablename__ = "open_token_purchases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation_id: Mapped[str] = mapped_column(String(36), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    issuer: Mapped[str | None] = mapped_column(String(50), nullable=True)
    tokens: Mapped[int] = mapped_column(Amount)
    price_cents: Mapped[int] = mapped_column(Amount)
    method: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(String(300), default="")
    invoice_number: Mapped[str | None] = mapped_column(String(32), unique=True, nullable=True)
    card_brand: Mapped[str | None] = mapped_column(String(16), nullable=True)
    card_last4: Mapped[str | None] = mapped_column(String(4), nullable=True)
    processor_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decline_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    recipient_username: Mapped[str | None] = mapped_column(String(64), nullable=True)
    recipient_full_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    gift_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the code is derived again when shown (open_money.gift_code); its digest says it is still that code
    gift_code_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # a later gift of the certificate (POST /v1/gift-certificates/{operation_id}/give)
    give_operation_id: Mapped[str | None] = mapped_column(String(36), unique=True, nullable=True)
    give_status: Mapped[str] = mapped_column(String(16), default="")
    give_reason: Mapped[str] = mapped_column(String(300), default="")
    answer_json: Mapped[str] = mapped_column(Text, default="")    # the MSP's answer to the issue
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OrderOpenPayment(Base):
    """The open-token part of an order: asked of the MSP (`operation_id`, the
    message id of `open.authorize`), authorized, then confirmed or voided; a
    cancelled order's is refunded."""

    __tablename__ = "order_open_payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("store_orders.id"), unique=True)
    operation_id: Mapped[str] = mapped_column(String(36), unique=True)
    units: Mapped[int] = mapped_column(Amount)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(300), default="")
    request_json: Mapped[str] = mapped_column(Text, default="")   # the order as asked (replayed on completion)
    answer_json: Mapped[str] = mapped_column(Text, default="")    # the MSP's authorization
    hold_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
