"""The MSP's records (FIG 14, 19; claims 11, 14, 15, 31, 32) and its books.

Their own DeclarativeBase (`MallBase`): the MSP has its own database and
migrations (server_stub/mall/migrations), never the vendor's tables. The
naming convention, amounts and UTC times are the vendor's (models/base.py).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint, text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ..models.base import NAMING, Amount, UTCDateTime, utcnow
from ..network.outbox import InboxColumns, OutboxColumns
from .vocabulary import Accepts, MemberStatus, MovementStatus, PeriodStatus, RoyaltyMode

MEMBER_ID = String(16)          # "m-" + 10 characters; "msp" for the MSP itself
OPERATION_ID = String(36)       # a UUID in its canonical text form


class MallBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# ---------------------------------------------------------------- members (FIG 14, 19)

class Member(MallBase):
    """A vendor server that joined the mall."""

    __tablename__ = "members"
    __table_args__ = (
        CheckConstraint("token_value_cents > 0", name="positive_token_value"),
        CheckConstraint("service_charge_bp >= 0 AND royalty_bp >= 0 AND fixed_fee_cents >= 0",
                        name="fees_not_negative"),
    )

    member_id: Mapped[str] = mapped_column(MEMBER_ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    base_url: Mapped[str] = mapped_column(String(300))
    network_key: Mapped[str] = mapped_column(String(64), unique=True)   # "ed25519:" + base64url
    code_keys: Mapped[list[dict[str, str]]] = mapped_column(JSON)        # [{kid, public_key}]
    token_name: Mapped[str] = mapped_column(String(50))
    token_value_cents: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=MemberStatus.ACTIVE)
    blocked_reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    parent_member_id: Mapped[str | None] = mapped_column(
        ForeignKey("members.member_id"), nullable=True, index=True)   # franchise parent
    accepts: Mapped[str] = mapped_column(String(16), default=Accepts.ALL)
    # fee schedule (claims 15, 32): basis points of the moved value, plus fixed cents per operation
    service_charge_bp: Mapped[int] = mapped_column(Integer, default=0)
    royalty_bp: Mapped[int] = mapped_column(Integer, default=0)
    fixed_fee_cents: Mapped[int] = mapped_column(Integer, default=0)
    royalty_mode: Mapped[str] = mapped_column(String(16), default=RoyaltyMode.INVOICE)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Invitation(MallBase):
    """A one-time code the operator hands to a vendor; only its SHA-256 is kept."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_digest: Mapped[str] = mapped_column(String(64), unique=True)   # sha-256 hex of the code
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    member_id: Mapped[str | None] = mapped_column(ForeignKey("members.member_id"), nullable=True)


class Group(MallBase):
    """A group of members (FIG 19 record 2104, claim 11): group tokens are accepted across it."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    discount_bp: Mapped[int] = mapped_column(Integer, default=0, server_default="0")   # on its open tokens
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GroupMember(MallBase):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"), primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id"), primary_key=True, index=True)


class Acceptance(MallBase):
    """`member_id` accepts the tokens of `accepted_member_id` (when its `accepts` is listed)."""

    __tablename__ = "acceptances"

    member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id"), primary_key=True)
    accepted_member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id"), primary_key=True)


class DirectoryState(MallBase):
    """One row: the directory's version, bumped by every change that alters it
    (members.bump_directory), and when that happened (the directory's issued_at)."""

    __tablename__ = "directory_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


# ---------------------------------------------------------------- records (FIG 14, 19)

class CustomerRecord(MallBase):
    """A customer of the mall: who they are at their home member. No secrets."""

    __tablename__ = "customer_records"
    __table_args__ = (UniqueConstraint("home_member_id", "home_user_id", name="uq_customer_records_home"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    home_member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id"))
    home_user_id: Mapped[str] = mapped_column(String(64))   # the assertion's `sub`
    full_name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TokenRecord(MallBase):
    """Claim 14: how many of one member's tokens were issued (sold, paid or on
    credit), granted free, spent, exchanged in and out, and expired.
    Circulation is derived, never stored."""

    __tablename__ = "token_records"
    __table_args__ = (
        CheckConstraint("issued >= 0 AND spent >= 0 AND exchanged_in >= 0 AND exchanged_out >= 0 "
                        "AND expired >= 0", name="counts_not_negative"),
        CheckConstraint("granted >= 0", name="granted_not_negative"),
    )

    member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id"), primary_key=True)
    issued: Mapped[int] = mapped_column(Amount, default=0)
    granted: Mapped[int] = mapped_column(Amount, default=0, server_default="0")
    spent: Mapped[int] = mapped_column(Amount, default=0)
    exchanged_in: Mapped[int] = mapped_column(Amount, default=0)
    exchanged_out: Mapped[int] = mapped_column(Amount, default=0)
    expired: Mapped[int] = mapped_column(Amount, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def circulation(self) -> int:
        return self.issued + self.granted + self.exchanged_in - self.spent - self.exchanged_out - self.expired


class Movement(MallBase):
    """Claim 31: every cross-member operation, keyed by its global id."""

    __tablename__ = "movements"
    __table_args__ = (
        CheckConstraint("tokens_from >= 0 AND tokens_to >= 0 AND value_cents >= 0", name="amounts_not_negative"),
        Index("ix_movements_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation_id: Mapped[str] = mapped_column(OPERATION_ID, unique=True)
    kind: Mapped[str] = mapped_column(String(24))
    from_member: Mapped[str] = mapped_column(ForeignKey("members.member_id"), index=True)
    to_member: Mapped[str] = mapped_column(ForeignKey("members.member_id"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer_records.id"), nullable=True, index=True)
    tokens_from: Mapped[int] = mapped_column(Amount)
    tokens_to: Mapped[int] = mapped_column(Amount)
    value_cents: Mapped[int] = mapped_column(Amount)
    # open payments: the exact value in 1/100 cents (value_cents is its whole cents)
    value_micro_cents: Mapped[int | None] = mapped_column(Amount, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=MovementStatus.PENDING)
    reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class FeeRecord(MallBase):
    """Claims 15, 32: a fee accrued by one operation, exactly, in 1/100 cents;
    `period_id` is set when the period it falls in closes."""

    __tablename__ = "fee_records"
    __table_args__ = (
        UniqueConstraint("operation_id", "member_id", "kind", name="uq_fee_records_operation"),
        Index("ix_fee_records_member_period", "member_id", "period_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id"))
    operation_id: Mapped[str] = mapped_column(OPERATION_ID, index=True)
    kind: Mapped[str] = mapped_column(String(24))
    amount_micro_cents: Mapped[int] = mapped_column(Amount)   # 1 cent = 100 units
    period_id: Mapped[int | None] = mapped_column(ForeignKey("periods.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# ---------------------------------------------------------------- books

class MallAccount(MallBase):
    """An account of the MSP's double-entry books. `asset` is "cent" or
    "token:<member_id>"; `balance` caches the sum of its transfers (books.py
    keeps it, books.verify proves it). Only accounts that may go negative
    (issuance, positions between members) ever do."""

    __tablename__ = "mall_accounts"
    __table_args__ = (
        CheckConstraint("negative_allowed OR balance >= 0", name="not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(100), unique=True)
    asset: Mapped[str] = mapped_column(String(100))
    owner_member_id: Mapped[str | None] = mapped_column(ForeignKey("members.member_id"), nullable=True,
                                                        index=True)   # None: the MSP's own
    negative_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    balance: Mapped[int] = mapped_column(Amount, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MallTransfer(MallBase):
    """One immutable movement of `amount` of `asset` between two accounts."""

    __tablename__ = "mall_transfers"
    __table_args__ = (
        CheckConstraint("amount > 0", name="positive_amount"),
        CheckConstraint("from_account_id <> to_account_id", name="distinct_accounts"),
        Index("ix_mall_transfers_from", "from_account_id", "id"),
        Index("ix_mall_transfers_to", "to_account_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_account_id: Mapped[int] = mapped_column(ForeignKey("mall_accounts.id"))
    to_account_id: Mapped[int] = mapped_column(ForeignKey("mall_accounts.id"))
    amount: Mapped[int] = mapped_column(Amount)
    asset: Mapped[str] = mapped_column(String(100))
    operation_id: Mapped[str | None] = mapped_column(OPERATION_ID, nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# ---------------------------------------------------------------- settlement (FIG 15 steps 9-10, FIG 16)

class Period(MallBase):
    """A settlement period; closing it writes one Statement per member."""

    __tablename__ = "periods"
    __table_args__ = (
        # one open period: two processes opening the next one at once end with one
        Index("uq_periods_one_open", "status", unique=True, sqlite_where=text("status = 'open'"),
              postgresql_where=text("status = 'open'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=PeriodStatus.OPEN)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Statement(MallBase):
    """One member's position for a closed period, in whole cents; the fee
    residue below a cent is carried to the next period."""

    __tablename__ = "statements"
    __table_args__ = (UniqueConstraint("period_id", "member_id", name="uq_statements_period_member"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period_id: Mapped[int] = mapped_column(ForeignKey("periods.id"))
    member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id"), index=True)
    owed_cents: Mapped[int] = mapped_column(Amount, default=0)       # others owe this member
    owing_cents: Mapped[int] = mapped_column(Amount, default=0)      # this member owes others
    fees_cents: Mapped[int] = mapped_column(Amount, default=0)
    rounding_gain_cents: Mapped[int] = mapped_column(Amount, default=0)
    net_cents: Mapped[int] = mapped_column(Amount, default=0)
    residue_micro_cents: Mapped[int] = mapped_column(Amount, default=0)   # carried forward
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PeriodSummary(MallBase):
    """A closed period's MSP line (the MSP is no member row) and the proof
    that the period's nets summed to zero."""

    __tablename__ = "period_summaries"

    period_id: Mapped[int] = mapped_column(ForeignKey("periods.id"), primary_key=True)
    msp_net_cents: Mapped[int] = mapped_column(Amount)
    msp_residue_micro_cents: Mapped[int] = mapped_column(Amount)
    members_net_cents: Mapped[int] = mapped_column(Amount)   # always -msp_net_cents
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SettledMovement(MallBase):
    """A completed movement taken into a period's statements (once)."""

    __tablename__ = "settled_movements"

    movement_id: Mapped[int] = mapped_column(ForeignKey("movements.id"), primary_key=True)
    period_id: Mapped[int] = mapped_column(ForeignKey("periods.id"), index=True)


class TokenNotice(MallBase):
    """FIG 13 step 5: a member's token sale or spend, told once (its message id);
    a sale's royalty in 1/100 cents and what its deposit paid of it at once."""

    __tablename__ = "token_notices"
    __table_args__ = (
        UniqueConstraint("member_id", "message_id", name="uq_token_notices_member_message"),
        CheckConstraint("tokens > 0 AND cents >= 0 AND royalty_micro_cents >= 0 AND paid_from_deposit_cents >= 0",
                        name="amounts_not_negative"),
        Index("ix_token_notices_member_period", "member_id", "period_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id"))
    message_id: Mapped[str] = mapped_column(String(64))
    operation_id: Mapped[str] = mapped_column(OPERATION_ID, unique=True)   # the royalty FeeRecord's
    event: Mapped[str] = mapped_column(String(8))
    tokens: Mapped[int] = mapped_column(Amount)
    cents: Mapped[int] = mapped_column(Amount, default=0)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    royalty_micro_cents: Mapped[int] = mapped_column(Amount, default=0)
    paid_from_deposit_cents: Mapped[int] = mapped_column(Amount, default=0)
    period_id: Mapped[int | None] = mapped_column(ForeignKey("periods.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PayoutInstruction(MallBase):
    """One payment to (pay) or debit of (debit) a member for a closed period,
    through the bank (settlement.Bank); `instruction_key` is the bank's
    idempotency key, so a retry never pays twice."""

    __tablename__ = "payout_instructions"
    __table_args__ = (
        UniqueConstraint("period_id", "member_id", name="uq_payout_instructions_period_member"),
        CheckConstraint("cents > 0", name="positive_cents"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period_id: Mapped[int] = mapped_column(ForeignKey("periods.id"))
    member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id"), index=True)
    direction: Mapped[str] = mapped_column(String(8))
    cents: Mapped[int] = mapped_column(Amount)
    instruction_key: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    bank_reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# ---------------------------------------------------------------- messages (server_stub/network/outbox.py)

class MspOutboxMessage(OutboxColumns, MallBase):
    """What the MSP sends to members (issues, results), delivered by its worker."""

    __tablename__ = "msp_outbox"


class MspInboxMessage(InboxColumns, MallBase):
    """What members sent the MSP, with the first answer it gave (final)."""

    __tablename__ = "msp_inbox"


# ---------------------------------------------------------------- backups (FIG 14: server_stub/mall/backups.py)

class MemberBackup(MallBase):
    """The latest signed snapshot of a member's customer and token records
    (one row per member; only a later snapshot replaces it). `body` is the
    message as the member sent it (canonical JSON), which the MSP cannot
    change unnoticed: the member checks its own signature over `sha256`."""

    __tablename__ = "member_backups"
    __table_args__ = (CheckConstraint("ledger_head >= 0 AND size_bytes > 0", name="sizes_not_negative"),)

    member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id"), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64))
    ledger_head: Mapped[int] = mapped_column(Amount)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Amount)
    users: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)


# ---------------------------------------------------------------- open tokens (FIG 18-20, issue 12)

class MspSettings(MallBase):
    """One row: the open unit's cash value (fixed once any open token was issued)."""

    __tablename__ = "msp_settings"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),
                      CheckConstraint("unit_value_cents > 0", name="positive_unit"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_value_cents: Mapped[int] = mapped_column(Integer, default=1)


class Brand(MallBase):
    """A manufacturer's brand (FIG 19): `member_id` settles for it (for an
    outside brand, the member the operator names)."""

    __tablename__ = "brands"
    __table_args__ = (CheckConstraint("discount_bp >= 0 AND discount_bp <= 10000 AND free_cap_units >= 0",
                                      name="terms_in_range"),)

    brand_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id"), index=True)
    discount_bp: Mapped[int] = mapped_column(Integer, default=0)
    free_cap_units: Mapped[int] = mapped_column(Amount, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BrandProduct(MallBase):
    """The product list 2103: (member, its product id) is the brand's product."""

    __tablename__ = "brand_products"

    member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id"), primary_key=True)
    product_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.brand_id"), index=True)


class GiftCertificate(MallBase):
    """Record 2105: a gift certificate; only its code's SHA-256 is kept.
    `lot_id` is the lot holding it (no foreign key: open_lots points back here)."""

    __tablename__ = "gift_certificates"
    __table_args__ = (CheckConstraint("face_units > 0", name="positive_face"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation_id: Mapped[str] = mapped_column(OPERATION_ID, unique=True)
    face_units: Mapped[int] = mapped_column(Amount)
    buyer_customer_id: Mapped[int] = mapped_column(ForeignKey("customer_records.id"))
    recipient_customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer_records.id"), nullable=True)
    code_sha256: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    seller_member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id"))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    lot_id: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OpenLot(MallBase):
    """One lot of open tokens of one customer (the contract's `open_lots`);
    its balance is its book account's (`lot:<id>`, never negative).
    `origin` says what made it, once: `issue:<operation>` or `change:<operation>:<lot>`."""

    __tablename__ = "open_lots"
    __table_args__ = (CheckConstraint("paid_bp >= 0 AND paid_bp <= 10000", name="paid_bp_in_range"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer_records.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    asset: Mapped[str] = mapped_column(String(100))
    issuer: Mapped[str | None] = mapped_column(String(50), nullable=True)
    seller_member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id"))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    paid_bp: Mapped[int] = mapped_column(Integer)
    gift_certificate_id: Mapped[int | None] = mapped_column(ForeignKey("gift_certificates.id"), nullable=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("mall_accounts.id"), unique=True)
    origin: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OpenPayment(MallBase):
    """Open tokens accepted by a member (FIG 20): authorized (held), then
    confirmed or voided; a confirmed one may be refunded."""

    __tablename__ = "open_payments"
    __table_args__ = (CheckConstraint("units > 0", name="positive_units"),
                      Index("ix_open_payments_status_hold", "status", "hold_expires_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation_id: Mapped[str] = mapped_column(OPERATION_ID, unique=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer_records.id"), index=True)
    units: Mapped[int] = mapped_column(Amount)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    hold_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OpenPaymentPortion(MallBase):
    """What one lot gave one line of a payment (`portion`), or a certificate's
    change (`change`: `lot_id` is the certificate's lot)."""

    __tablename__ = "open_payment_portions"
    __table_args__ = (CheckConstraint("tokens > 0", name="positive_tokens"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("open_payments.id"), index=True)
    line: Mapped[int] = mapped_column(Integer)
    lot_id: Mapped[int] = mapped_column(ForeignKey("open_lots.id"), index=True)
    tokens: Mapped[int] = mapped_column(Amount)
    kind: Mapped[str] = mapped_column(String(16))


class MspSession(MallBase):
    """A customer's session at the MSP (from a home member's assertion); only the token's SHA-256."""

    __tablename__ = "msp_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer_records.id"), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MspAssertionUse(MallBase):
    """An assertion's `jti` spent at the MSP (once)."""

    __tablename__ = "msp_assertion_uses"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    issuer: Mapped[str] = mapped_column(MEMBER_ID)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RedeemFailure(MallBase):
    """A wrong gift-certificate code tried by a customer (the redeem lockout counts them)."""

    __tablename__ = "redeem_failures"
    __table_args__ = (Index("ix_redeem_failures_customer_at", "customer_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer_records.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OpenLotMove(MallBase):
    """A lot that changed holder without its tokens moving (a gift certificate
    redeemed or given): the open wallet's activity shows it to both customers."""

    __tablename__ = "open_lot_moves"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("open_lots.id"), index=True)
    from_customer_id: Mapped[int] = mapped_column(ForeignKey("customer_records.id"), index=True)
    to_customer_id: Mapped[int] = mapped_column(ForeignKey("customer_records.id"), index=True)
    tokens: Mapped[int] = mapped_column(Amount)          # the lot's balance when it moved
    why: Mapped[str] = mapped_column(String(16))         # vocabulary.LotMoveReason
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
