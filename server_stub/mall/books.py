"""The MSP's double-entry books: the one module with their rules.

- Every movement is one immutable `MallTransfer` of a positive amount of one
  asset ("cent", or "token:<member_id>") between two accounts of that asset.
- `MallAccount.balance` caches the sum of the account's transfers; `post`
  keeps it in the same transaction, `verify` proves it.
- Per asset, all accounts sum to zero (every transfer takes what it gives).
- An account that is not `negative_allowed` never goes below zero: `post`
  refuses (BooksRefused) before it writes anything, and a CHECK constraint
  stands behind that.

Everything runs inside the caller's write transaction (db.write_session). On
SQLite that transaction began IMMEDIATE; on PostgreSQL `post` locks the two
account rows in ascending id order, so concurrent postings never deadlock on
one transfer and never both spend the same balance.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.attributes import set_committed_value

from ..db import session_cache
from ..db_types import conflict_insert
from ..models.base import utcnow
from ..services.errors import Conflict, Invalid
from .models import MallAccount, MallTransfer
from .vocabulary import CENT_ASSET, OPEN_ASSET_PREFIX, TOKEN_ASSET_PREFIX, BookEntryKind

MAX_AMOUNT = 10**15     # far above any real sum; a larger amount is a bug upstream, not money


class BooksRefused(Conflict):
    """409: the posting would take an account below zero."""


def token_asset(member_id: str) -> str:
    """The asset of one member's tokens."""
    return TOKEN_ASSET_PREFIX + member_id


def is_asset(text: str) -> bool:
    """"cent", "token:<member>" or an open token's "open:<kind>[:<issuer>]" (open_money.asset_name)."""
    return text == CENT_ASSET or any(text.startswith(prefix) and len(text) > len(prefix)
                                     for prefix in (TOKEN_ASSET_PREFIX, OPEN_ASSET_PREFIX))


def account(db: Session, code: str, asset: str, *, owner_member_id: str | None = None,
            negative_allowed: bool = False, likely_new: bool = False) -> MallAccount:
    """The account `code`, created on first use. Two processes creating it at
    once end with one row (the insert does nothing on a conflict). Asking for
    an existing code with another asset, owner or sign rule is a bug.
    `likely_new` (an operation's own account): insert first, read only if it exists."""
    if not is_asset(asset):
        raise ValueError(f"not an asset: {asset!r}")
    # a transaction asks for the same few accounts again and again
    known: dict[str, MallAccount] = session_cache(db, "mall_accounts_by_code")
    acct = known.get(code)
    if acct is None and not likely_new:
        acct = db.scalar(select(MallAccount).where(MallAccount.code == code))
    if acct is None:
        acct = db.scalars(conflict_insert(db, MallAccount).values(
            code=code, asset=asset, owner_member_id=owner_member_id, negative_allowed=negative_allowed,
            balance=0, created_at=utcnow()).on_conflict_do_nothing(index_elements=["code"])
            .returning(MallAccount)).one_or_none()
        if acct is None:   # it existed, or another transaction made it first
            acct = db.scalars(select(MallAccount).where(MallAccount.code == code)).one()
    if (acct.asset, acct.owner_member_id, acct.negative_allowed) != (asset, owner_member_id, negative_allowed):
        raise RuntimeError(f"book account {code} exists as {acct.asset}/{acct.owner_member_id}/"
                           f"negative_allowed={acct.negative_allowed}")
    known[code] = acct
    return acct


def position_account(db: Session, member_id: str) -> MallAccount:
    """A member's position in cents towards the network (compensation, open payments' cash):
    what the period's statement settles."""
    return account(db, f"member:{member_id}:position", CENT_ASSET, owner_member_id=member_id, negative_allowed=True)


def lock_accounts(db: Session, accounts: list[MallAccount]) -> None:
    """Lock several accounts at once, in ascending id order, before posting between them in
    any order: two transactions that each post several transfers then never deadlock."""
    ids = sorted({a.id for a in accounts})
    if ids:
        db.execute(select(MallAccount.id).where(MallAccount.id.in_(ids)).order_by(MallAccount.id).with_for_update())


def find_account(db: Session, code: str) -> MallAccount | None:
    return db.scalar(select(MallAccount).where(MallAccount.code == code))


def post(db: Session, source: MallAccount, dest: MallAccount, amount: int, *,
         kind: BookEntryKind, operation_id: str | None = None) -> int:
    """Move `amount` of the accounts' asset from `source` to `dest`; returns
    the transfer's id. Refuses (and writes nothing) when the amount is not a
    positive integer, the assets differ, or `source` may not go below zero and
    would."""
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT:
        raise Invalid(f"amount must be an integer from 1 to {MAX_AMOUNT}")
    if source.id == dest.id:
        raise Invalid("a transfer needs two different accounts")
    if source.asset != dest.asset:
        raise Invalid(f"cannot move {source.asset} into an account of {dest.asset}")
    locked = db.execute(select(MallAccount.id, MallAccount.balance, MallAccount.negative_allowed)
                        .where(MallAccount.id.in_((source.id, dest.id)))
                        .order_by(MallAccount.id).with_for_update()).all()
    current = {row.id: row for row in locked}
    src = current[source.id]
    if not src.negative_allowed and src.balance < amount:
        raise BooksRefused(f"{source.code} holds {src.balance} {source.asset}, less than {amount}",
                           account=source.code, balance=int(src.balance), amount=amount)
    conn = db.connection()   # Core statements: the ORM does not re-sync what set_committed_value sets
    changes = sorted(((source, -amount), (dest, amount)), key=lambda pair: pair[0].id)
    for acct, change in changes:
        conn.execute(update(MallAccount).where(MallAccount.id == acct.id)
                     .values(balance=MallAccount.balance + change))
        set_committed_value(acct, "balance", int(current[acct.id].balance) + change)
    return int(conn.execute(insert(MallTransfer).values(
        from_account_id=source.id, to_account_id=dest.id, amount=amount, asset=source.asset,
        operation_id=operation_id, kind=kind, created_at=utcnow()).returning(MallTransfer.id)).scalar_one())


@dataclass
class BooksReport:
    ok: bool
    totals: dict[str, int] = field(default_factory=dict)          # per asset: 0 when conserved
    mismatched_accounts: list[str] = field(default_factory=list)  # cache != sum of transfers
    negative_accounts: list[str] = field(default_factory=list)    # below zero, not allowed to be
    wrong_asset_transfers: list[int] = field(default_factory=list)


def verify(db: Session) -> BooksReport:
    """Conservation: every asset sums to zero over all accounts; every cached
    balance equals the sum of its transfers; no account is below zero unless
    allowed; every transfer is in its accounts' asset."""
    received = dict(db.execute(select(MallTransfer.to_account_id, func.sum(MallTransfer.amount))
                               .group_by(MallTransfer.to_account_id)).all())
    sent = dict(db.execute(select(MallTransfer.from_account_id, func.sum(MallTransfer.amount))
                           .group_by(MallTransfer.from_account_id)).all())
    report = BooksReport(ok=True)
    for acct in db.scalars(select(MallAccount).order_by(MallAccount.id)):
        derived = int(received.get(acct.id, 0)) - int(sent.get(acct.id, 0))
        report.totals[acct.asset] = report.totals.get(acct.asset, 0) + derived
        if derived != acct.balance:
            report.mismatched_accounts.append(acct.code)
        if derived < 0 and not acct.negative_allowed:
            report.negative_accounts.append(acct.code)
    source, dest = aliased(MallAccount), aliased(MallAccount)
    report.wrong_asset_transfers = list(db.scalars(
        select(MallTransfer.id)
        .join(source, source.id == MallTransfer.from_account_id)
        .join(dest, dest.id == MallTransfer.to_account_id)
        .where((MallTransfer.asset != source.asset) | (MallTransfer.asset != dest.asset))
        .order_by(MallTransfer.id)))
    report.ok = (all(total == 0 for total in report.totals.values()) and not report.mismatched_accounts
                 and not report.negative_accounts and not report.wrong_asset_transfers)
    return report
