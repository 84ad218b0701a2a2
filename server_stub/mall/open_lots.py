"""A customer's open-token lots in the MSP's books (FIG 19 record 2102; docs/mall.md
"Open tokens"): the one module that makes lots and reads their balances.

- A lot is one `OpenLot` row and its own book account `lot:<origin>` of the
  lot's asset, never negative; its balance is the account's.
- Open tokens come into being only here: `issue_lot` posts them from the
  issuance account `issue:<asset>:<seller>` (negative allowed), so an asset's
  circulation is minus the sum of its issuance accounts, and books.verify's
  "every asset sums to zero" covers open tokens too.
- `origin` says once what made a lot (`issue:<operation>`, `change:<operation>:<lot>`,
  `grant:<operation>`); making it again returns the same lot, with other terms a 422.

Everything runs in the caller's write transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db_types import conflict_insert
from ..models.base import utcnow
from ..network import open_money
from ..network.money import BASIS_POINTS
from ..network.open_money import OpenKind
from ..services.errors import Invalid
from . import books
from .models import MallAccount, MallTransfer, MspSettings, OpenLot
from .vocabulary import BookEntryKind

MAX_ORIGIN = 90     # `lot:` + origin fits an account code (100)


def unit_value_cents(db: Session) -> int:
    """The open unit's cash value (MspSettings; 1 cent until the operator sets it)."""
    row = db.get(MspSettings, 1)
    return row.unit_value_cents if row is not None else 1


def issuance_account(db: Session, asset: str, seller_member_id: str) -> MallAccount:
    return books.account(db, f"issue:{asset}:{seller_member_id}", asset, owner_member_id=seller_member_id,
                         negative_allowed=True)


@dataclass(frozen=True)
class LotTerms:
    customer_id: int
    kind: OpenKind
    issuer: str | None
    tokens: int
    seller_member_id: str
    paid_bp: int                      # share of face value the seller was paid (10000 full, 0 free)
    expires_at: datetime | None
    origin: str
    gift_certificate_id: int | None = None


def _same(db: Session, lot: OpenLot, t: LotTerms, asset: str) -> bool:
    first = db.scalar(select(MallTransfer.amount).where(MallTransfer.to_account_id == lot.account_id)
                      .order_by(MallTransfer.id).limit(1))    # what the lot was made with
    return first == t.tokens and ((lot.customer_id, lot.kind, lot.asset, lot.issuer, lot.seller_member_id, lot.paid_bp,
             lot.gift_certificate_id) ==
            (t.customer_id, t.kind.value, asset, t.issuer, t.seller_member_id, t.paid_bp, t.gift_certificate_id)
            and (lot.expires_at is None) == (t.expires_at is None)
            and (t.expires_at is None or lot.expires_at is None
                 or abs((lot.expires_at - t.expires_at).total_seconds()) < 1))


def issue_lot(db: Session, terms: LotTerms, *, kind: BookEntryKind = BookEntryKind.OPEN_TOKEN_ISSUE,
              operation_id: str | None = None) -> tuple[OpenLot, bool]:
    """The lot of `terms.origin` holding `terms.tokens` new open tokens, and
    whether this call made it (a repeat returns the first lot, nothing twice)."""
    if not 0 < terms.tokens <= books.MAX_AMOUNT:
        raise Invalid("a lot holds at least one open token")
    if not 0 <= terms.paid_bp <= BASIS_POINTS:
        raise Invalid("paid_bp is 0-10000")
    if not terms.origin or len(terms.origin) > MAX_ORIGIN:
        raise Invalid(f"a lot's origin is 1-{MAX_ORIGIN} characters")
    try:
        asset = open_money.asset_name(terms.kind, terms.issuer)
    except open_money.OpenMoneyError as e:
        raise Invalid(str(e)) from None
    existing = db.scalar(select(OpenLot).where(OpenLot.origin == terms.origin))
    if existing is not None:
        if not _same(db, existing, terms, asset):
            raise Invalid(f"lot {terms.origin} already exists with other terms", code="idempotency_key_reused")
        return existing, False
    account = books.account(db, f"lot:{terms.origin}", asset)
    now = utcnow()
    made = db.execute(conflict_insert(db, OpenLot).values(
        customer_id=terms.customer_id, kind=terms.kind.value, asset=asset, issuer=terms.issuer,
        seller_member_id=terms.seller_member_id, expires_at=terms.expires_at, paid_bp=terms.paid_bp,
        gift_certificate_id=terms.gift_certificate_id, account_id=account.id, origin=terms.origin,
        created_at=now).on_conflict_do_nothing(index_elements=["origin"]).returning(OpenLot.id)).first()
    lot = db.scalars(select(OpenLot).where(OpenLot.origin == terms.origin)
                     .execution_options(populate_existing=True)).one()
    if made is None:   # another transaction made it first (PostgreSQL): the same rules as a repeat
        if not _same(db, lot, terms, asset):
            raise Invalid(f"lot {terms.origin} already exists with other terms", code="idempotency_key_reused")
        return lot, False
    books.post(db, issuance_account(db, asset, terms.seller_member_id), account, terms.tokens, kind=kind,
               operation_id=operation_id)
    return lot, True


def lot_account(db: Session, lot: OpenLot) -> MallAccount:
    acct = db.get(MallAccount, lot.account_id)
    assert acct is not None
    return acct


@dataclass(frozen=True)
class LotBalance:
    lot: OpenLot
    tokens: int

    def expired(self, now: datetime) -> bool:
        return self.lot.expires_at is not None and self.lot.expires_at <= now

    def as_plan_lot(self) -> open_money.Lot:
        return open_money.Lot(self.lot.id, OpenKind(self.lot.kind), self.lot.issuer, self.tokens,
                              self.lot.expires_at)


def customer_lots(db: Session, customer_id: int, *, with_empty: bool = False,
                  for_update: bool = False) -> list[LotBalance]:
    """The customer's lots with their balances, in id order (with_empty: the
    spent ones too). for_update locks the lots and their accounts (a payment's plan)."""
    q = (select(OpenLot, MallAccount.balance).join(MallAccount, MallAccount.id == OpenLot.account_id)
         .where(OpenLot.customer_id == customer_id).order_by(OpenLot.id))
    if not with_empty:
        q = q.where(MallAccount.balance > 0)
    if for_update:   # the lot rows too: a certificate given away meanwhile is re-read, not spent
        q = q.with_for_update(of=(OpenLot, MallAccount))
    return [LotBalance(lot, int(balance)) for lot, balance in db.execute(q).all()]


def plan_lots(balances: list[LotBalance]) -> list[open_money.Lot]:
    """What open_money.plan_payment takes (it skips expired and empty lots itself)."""
    return [b.as_plan_lot() for b in balances if b.tokens > 0]
