"""FIG 13 step 5 at the MSP: members tell it their token sales, free grants,
spends and expiries, and once their counts when they joined (POST
/v1/mall/notices, signed, through the inbox: applied once). The MSP counts
them in the member's token record (claim 14), so that its circulation equals
the member's (the audit compares them), and records the royalty
owed on a sale (claims 15, 32): in `deposit` mode the whole cents of it are
debited at once from the member's deposit at the MSP (what the deposit cannot
cover, and the part below a cent, is invoiced on the period's statement); in
`invoice` mode all of it waits for the statement (settlement.py)."""
from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.orm import Session

from ..network.money import UNITS_PER_CENT, royalty_units, whole_cents
from ..services.errors import Invalid, NotFound, first_error
from . import books, records
from .models import MallAccount, Member, TokenNotice
from .vocabulary import CENT_ASSET, BookEntryKind, FeeKind, NoticeEvent, RoyaltyMode

NOTICE_NAMESPACE = uuid.UUID("5d0c4a8e-2f3b-4c61-9a57-7f0f5b1e9c11")   # operation ids of notices
BANK_ACCOUNT = "bank"                 # the world outside the books: cash in (deposits) and out (payouts)
EARNINGS_ACCOUNT = "msp:earnings"     # what the MSP earned: royalties and fees, once paid


class Notice(BaseModel):
    """What a member sends (services/mall_notices.py)."""

    model_config = ConfigDict(extra="forbid")
    event: NoticeEvent
    tokens: Annotated[int, Field(ge=1, le=10**12)]
    cents: Annotated[int, Field(ge=0, le=10**12)] = 0
    at: AwareDatetime

    @model_validator(mode="after")
    def _cents_only_on_sales(self) -> Notice:
        if self.event == NoticeEvent.OPENING:
            raise ValueError("an opening carries counts, not tokens")
        if self.event != NoticeEvent.SALE and self.cents:
            raise ValueError(f"a {self.event.value} carries no cents")
        return self


Count = Annotated[int, Field(ge=0, le=10**15)]


class OpeningNotice(BaseModel):
    """A member's counts at the moment it joined (services/mall.record_membership)."""

    model_config = ConfigDict(extra="forbid")
    event: Literal[NoticeEvent.OPENING]
    issued: Count
    granted: Count
    spent: Count
    expired: Count
    at: AwareDatetime


_COUNTED = {NoticeEvent.SALE: "issued", NoticeEvent.GRANT: "granted", NoticeEvent.SPEND: "spent",
            NoticeEvent.EXPIRY: "expired"}


def bank_account(db: Session) -> MallAccount:
    return books.account(db, BANK_ACCOUNT, CENT_ASSET, negative_allowed=True)


def earnings_account(db: Session) -> MallAccount:
    return books.account(db, EARNINGS_ACCOUNT, CENT_ASSET, negative_allowed=True)


def deposit_account(db: Session, member_id: str) -> MallAccount:
    """A member's cash at the MSP, never below zero."""
    return books.account(db, f"member:{member_id}:deposit", CENT_ASSET, owner_member_id=member_id)


def _member(db: Session, member_id: str) -> Member:
    m = db.get(Member, member_id)
    if m is None:
        raise NotFound(f"no member {member_id}")
    return m


def record_notice(db: Session, sender: str, message_id: str, raw: Any) -> dict[str, Any]:
    """Apply one notice (inside the inbox's transaction: at most once)."""
    if isinstance(raw, dict) and raw.get("event") == NoticeEvent.OPENING:
        return _record_opening(db, sender, raw)
    try:
        notice = Notice.model_validate(raw)
    except ValidationError as e:
        raise Invalid(f"not a notice: {first_error(e)}") from None
    member = _member(db, sender)    # a blocked member's notices count too: the sales happened
    operation_id = str(uuid.uuid5(NOTICE_NAMESPACE, f"{member.member_id}:{message_id}"))
    royalty = paid = 0
    if notice.event == NoticeEvent.SALE:
        records.count_tokens(db, member.member_id, issued=notice.tokens)
        royalty = royalty_units(notice.cents, member.royalty_bp)
        if member.royalty_mode == RoyaltyMode.DEPOSIT and royalty:
            deposit = deposit_account(db, member.member_id)
            paid = min(whole_cents(royalty), max(int(deposit.balance), 0))
            if paid:
                books.post(db, deposit, earnings_account(db), paid, kind=BookEntryKind.ROYALTY,
                           operation_id=operation_id)
        if royalty:
            records.add_fee(db, member.member_id, operation_id, FeeKind.ROYALTY, royalty)
    else:
        records.count_tokens(db, member.member_id, **{_COUNTED[notice.event]: notice.tokens})
    db.add(TokenNotice(member_id=member.member_id, message_id=message_id, operation_id=operation_id,
                       event=notice.event, tokens=notice.tokens, cents=notice.cents, occurred_at=notice.at,
                       royalty_micro_cents=royalty, paid_from_deposit_cents=paid))
    db.flush()
    return {"event": notice.event.value, "tokens": notice.tokens, "royalty_micro_cents": royalty,
            "paid_from_deposit_cents": paid, "invoiced_micro_cents": royalty - paid * UNITS_PER_CENT}


def _record_opening(db: Session, sender: str, raw: Any) -> dict[str, Any]:
    """The counts a member had when it joined, added to its (new) token record once."""
    try:
        opening = OpeningNotice.model_validate(raw)
    except ValidationError as e:
        raise Invalid(f"not an opening notice: {first_error(e)}") from None
    member = _member(db, sender)
    counts = {"issued": opening.issued, "granted": opening.granted, "spent": opening.spent,
              "expired": opening.expired}
    record = records.count_tokens(db, member.member_id, **counts)
    return {"event": opening.event.value, **counts, "circulation": record.circulation}


def record_deposit(db: Session, member_id: str, cents: int) -> dict[str, Any]:
    """The operator records cash a member paid into its deposit (the bank is simulated)."""
    if isinstance(cents, bool) or not isinstance(cents, int) or not 1 <= cents <= books.MAX_AMOUNT:
        raise Invalid(f"cents must be an integer from 1 to {books.MAX_AMOUNT}")
    member = _member(db, member_id)
    deposit = deposit_account(db, member.member_id)
    books.post(db, bank_account(db), deposit, cents, kind=BookEntryKind.DEPOSIT)
    return {"member_id": member.member_id, "deposited_cents": cents, "deposit_cents": int(deposit.balance)}


def find_deposit(db: Session, member_id: str) -> MallAccount | None:
    return books.find_account(db, f"member:{member_id}:deposit")
