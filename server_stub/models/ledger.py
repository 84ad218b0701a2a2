"""The double-entry token and money ledger.

Every movement is one immutable `LedgerTransfer` from one account to another.
`LedgerAccount.balance` is a cache kept only for user-owned accounts (updated
in the same transaction, under the user's lock); vendor accounts are summed
from transfers when needed, so they are never a lock hot spot.
`services.ledger.verify_ledger` proves cache == sum and sum == 0.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..vocabulary import HoldStatus
from .base import Amount, Base, UTCDateTime, utcnow

# (token kinds, hold statuses and currencies: server_stub.vocabulary)
# purposes
WALLET = "wallet"     # a user's token lot: (kind, expiry)
HOLD = "hold"         # a user's reserved tokens, waiting to be posted or voided
VENDOR = "vendor"     # the vendor's own accounts (issuance, revenue, cash ...)


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(100), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(8))
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True, index=True)
    token_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    balance: Mapped[int] = mapped_column(Amount, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerTransfer(Base):
    __tablename__ = "ledger_transfers"
    __table_args__ = (
        CheckConstraint("amount > 0", name="positive_amount"),
        CheckConstraint("from_account_id <> to_account_id", name="distinct_accounts"),
        Index("ix_ledger_transfers_from", "from_account_id", "id"),
        Index("ix_ledger_transfers_to", "to_account_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    to_account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(24))  # purchase, grant, transfer, hold, ...
    memo: Mapped[str] = mapped_column(String(200), default="")
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_holds.id"), nullable=True, index=True)
    purchase_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    # The owner's spendable wallet total after this transfer (statement column).
    from_wallet_after: Mapped[int | None] = mapped_column(Amount, nullable=True)
    to_wallet_after: Mapped[int | None] = mapped_column(Amount, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerHold(Base):
    __tablename__ = "ledger_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    amount: Mapped[int] = mapped_column(Amount)
    status: Mapped[str] = mapped_column(String(16), default=HoldStatus.HELD)
    reference: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
