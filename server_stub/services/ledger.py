"""The double-entry token ledger: transfers, lots, spend order, holds.

Everything here runs inside the caller's write transaction (db.write_session
/ the WriteDb dependency) and after `lock_wallets` for every user involved:
that is what makes check-then-move safe on SQLite (BEGIN IMMEDIATE) and on
PostgreSQL (user rows locked FOR UPDATE in id order).

A user's wallet is a set of lot accounts, one per (token kind, expiry).
Spend order (one rule, `plan_spend`): restricted tokens first for items on
sale, then the soonest-expiring lots, incentive before standard on a tie,
never-expiring standard tokens last, then the vendor-granted negative draw.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, UTC
from collections.abc import Sequence

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..db import lock_users, session_cache
from ..models.base import utcnow
from ..models.ledger import HOLD, WALLET, LedgerAccount, LedgerHold, LedgerTransfer
from ..models.user import User
from ..vocabulary import Currency, HoldStatus, TokenKind, TransferKind
from . import mall_notices
from .errors import Conflict, InsufficientTokens, Invalid, NotFound

# The vendor's accounts (created by the first migration).
ISSUANCE = "vendor:issuance"      # tokens sold come from here
PROMOTIONS = "vendor:promotions"  # free tokens (grants, incentives) come from here
REVENUE = "vendor:revenue"        # tokens spent in the store go here
EXPIRED = "vendor:expired"        # expired tokens go here
SALES = "vendor:sales"            # cents: what users owe / paid for tokens
CASH = "vendor:cash"              # cents received
RECEIVABLES = "vendor:receivables"  # cents owed for tokens credited before payment
EXCHANGED_OUT = "vendor:exchanged_out"  # tokens that left for another member (exchanges)
EXCHANGED_IN = "vendor:exchanged_in"    # tokens issued here for exchanges from other members

MAX_TOKENS = 1_000_000_000
MAX_TOKEN_LIFETIME = timedelta(days=100 * 366)  # a lot expiring later than this is a typo


# ---------------------------------------------------------------- accounts

@dataclass(frozen=True)
class VendorRef:
    """A vendor account by id: vendor balances are never cached, so a
    transfer needs only its id and currency (no row to load or lock)."""

    id: int
    code: str
    currency: str
    owner_user_id: None = None


_vendor_refs: dict[tuple[str, str], VendorRef] = {}


def vendor_account(db: Session, code: str) -> VendorRef:
    key = (str(db.get_bind().url), code)
    ref = _vendor_refs.get(key)
    if ref is None:
        acct = db.scalar(select(LedgerAccount).where(LedgerAccount.code == code))
        if acct is None:
            raise RuntimeError(f"vendor ledger account {code} is missing: run the migrations")
        ref = _vendor_refs[key] = VendorRef(acct.id, acct.code, acct.currency)
    return ref


def _lot_code(user_id: int, kind: str, expires_at: datetime | None) -> str:
    stamp = expires_at.strftime("%Y%m%dT%H%M%SZ") if expires_at else "never"
    return f"user:{user_id}:{kind}:{stamp}"


def user_accounts(db: Session, user_id: int) -> list[LedgerAccount]:
    """All of a user's ledger accounts, loaded once per transaction (db.session_cache: dropped
    at commit and at any rollback)."""
    cache = _cached_accounts(db)
    accts = cache.get(user_id)
    if accts is None:
        _load_user_accounts(db, [user_id])
        accts = cache[user_id]
    return accts


_ACCOUNTS_OF = (select(LedgerAccount).where(LedgerAccount.owner_user_id.in_(bindparam("owners", expanding=True)))
                .order_by(LedgerAccount.id))


def _cached_accounts(db: Session) -> dict[int, list[LedgerAccount]]:
    return session_cache(db, "user_accounts")


def _load_user_accounts(db: Session, user_ids: Sequence[int]) -> None:
    """The accounts of several users in one statement, into the transaction's cache."""
    if not user_ids:
        return
    cache = _cached_accounts(db)
    loaded: dict[int, list[LedgerAccount]] = {uid: [] for uid in user_ids}
    for acct in db.scalars(_ACCOUNTS_OF, {"owners": list(user_ids)}):
        loaded[acct.owner_user_id].append(acct)
    cache.update(loaded)


def _user_account(db: Session, user_id: int, code: str, **fields) -> LedgerAccount:
    accts = user_accounts(db, user_id)
    for a in accts:
        if a.code == code:
            return a
    acct = LedgerAccount(code=code, currency=Currency.TOKEN, owner_user_id=user_id, balance=0, **fields)
    db.add(acct)
    db.flush()
    accts.append(acct)
    return acct


def wallet_lot(db: Session, user_id: int, kind: str = TokenKind.STANDARD,
               expires_at: datetime | None = None) -> LedgerAccount:
    """The lot account for (kind, expiry), created on first use (caller holds the lock)."""
    if expires_at is not None:
        expires_at = expires_at.astimezone(UTC).replace(microsecond=0)  # one lot per instant
    return _user_account(db, user_id, _lot_code(user_id, kind, expires_at), purpose=WALLET,
                         token_kind=kind, expires_at=expires_at)


def hold_account(db: Session, user_id: int) -> LedgerAccount:
    return _user_account(db, user_id, f"user:{user_id}:hold", purpose=HOLD)


def lock_wallets(db: Session, *user_ids: int, usernames: Sequence[str] = ()) -> dict[int, User]:
    """Take the wallet locks of these users (db.lock_users: ascending id order, so two
    transactions never wait on each other), expire their due lots, and return them by id, read
    under the lock (`db.get` of one of them then sends nothing). Two statements for any number
    of users: the users, then all their ledger accounts. `usernames`: users known by name
    locked in the same statement (see db.lock_users)."""
    users = lock_users(db, user_ids, usernames)
    _load_user_accounts(db, [uid for uid in users if uid not in _cached_accounts(db)])
    for uid in users:
        expire_due_lots(db, uid)
    return users


# ---------------------------------------------------------------- transfers

def _wallet_total(db: Session, user_id: int) -> int:
    return sum(a.balance for a in user_accounts(db, user_id) if a.purpose == WALLET)


_transfers = LedgerTransfer.__table__
_accounts = LedgerAccount.__table__
# Built once: a call only binds its values (building a statement costs more than running it).
_ADD_TO_BALANCE = (update(_accounts).where(_accounts.c.id == bindparam("a"))
                   .values(balance=_accounts.c.balance + bindparam("da")))
# Both cached balances of a transfer in one statement (one round trip, not two).
_ADD_TO_TWO_BALANCES = (update(_accounts).where(_accounts.c.id.in_([bindparam("a"), bindparam("b")]))
                        .values(balance=_accounts.c.balance + case((_accounts.c.id == bindparam("a"), bindparam("da")),
                                                                   else_=bindparam("db"))))
_INSERT_TRANSFER = insert(_transfers)


def post_transfer(db: Session, source: LedgerAccount, dest: LedgerAccount, amount: int,
                  kind: str, memo: str = "", hold_id: int | None = None,
                  purchase_id: int | None = None) -> int:
    """Move `amount` from source to dest: one immutable row, cached balances
    updated. Returns the transfer's id.

    Core statements on the transaction's connection, not the ORM's unit of
    work: this runs in every token-moving request, under the wallet lock.
    The loaded account objects get the new balance as their committed value,
    so later reads in the transaction see it and no second UPDATE is made."""
    if not isinstance(amount, int) or amount <= 0:
        raise Invalid("amount must be a positive integer")
    if source.currency != dest.currency:
        raise RuntimeError("transfer between currencies")
    changes = {acct.id: change for acct, change in ((source, -amount), (dest, amount))
               if acct.owner_user_id is not None}
    conn = db.connection()
    if len(changes) == 2:
        (a, da), (b, db_) = changes.items()
        conn.execute(_ADD_TO_TWO_BALANCES, {"a": a, "da": da, "b": b, "db": db_})
    elif changes:
        ((a, da),) = changes.items()
        conn.execute(_ADD_TO_BALANCE, {"a": a, "da": da})
    for acct, change in ((source, -amount), (dest, amount)):
        if acct.owner_user_id is not None:
            set_committed_value(acct, "balance", acct.balance + change)
    return conn.execute(_INSERT_TRANSFER, {
        "from_account_id": source.id, "to_account_id": dest.id, "amount": amount,
        "currency": source.currency, "kind": kind, "memo": memo[:200], "hold_id": hold_id,
        "purchase_id": purchase_id, "created_at": utcnow(),
        "from_wallet_after": _wallet_total(db, source.owner_user_id) if source.owner_user_id else None,
        "to_wallet_after": _wallet_total(db, dest.owner_user_id) if dest.owner_user_id else None,
    }).inserted_primary_key[0]


def move_cents(db: Session, source_code: str, dest_code: str, cents: int, kind: str,
               memo: str = "", purchase_id: int | None = None) -> None:
    if cents > 0:
        post_transfer(db, vendor_account(db, source_code), vendor_account(db, dest_code), cents,
                      kind, memo, purchase_id=purchase_id)


def credit_tokens(db: Session, user: User, tokens: int, source_code: str, kind: str,
                  memo: str, token_kind: str = TokenKind.STANDARD,
                  expires_at: datetime | None = None, purchase_id: int | None = None) -> int:
    """Put tokens into a user's wallet (caller holds the user's lock); the
    transfer's id. The ledger only moves tokens: the caller applies
    accounts.activate_if_funded. Free tokens are told to the MSP once the
    store is in a mall (its circulation counts them)."""
    if expires_at is not None:
        now = utcnow()
        if expires_at.tzinfo is None:
            raise Invalid("expires_at needs a time-zone offset")
        if not now < expires_at <= now + MAX_TOKEN_LIFETIME:
            raise Invalid("expires_at must be in the future and at most 100 years away")
    lot = wallet_lot(db, user.id, token_kind, expires_at)
    transfer_id = post_transfer(db, vendor_account(db, source_code), lot, tokens, kind, memo,
                                purchase_id=purchase_id)
    if source_code == PROMOTIONS:
        mall_notices.grant(db, transfer_id, tokens)
    return transfer_id


# ---------------------------------------------------------------- balances

@dataclass
class Wallet:
    """A snapshot of one user's lots (unexpired, not held)."""

    lots: list[LedgerAccount]
    negative_limit: int
    held: int = 0

    def total(self, kind: str | None = None) -> int:
        return sum(a.balance for a in self.lots if kind is None or a.token_kind == kind)

    @property
    def debt(self) -> int:
        """Tokens drawn on the vendor's negative-draw credit (the main lot below zero)."""
        return sum(-a.balance for a in self.lots if a.balance < 0)

    @property
    def transferable(self) -> int:
        """Standard tokens the user owns outright: the vendor's credit is not passed on."""
        owned = sum(a.balance for a in self.lots if a.token_kind == TokenKind.STANDARD and a.balance > 0)
        return max(0, owned - self.debt)

    def breakdown(self) -> dict:
        now = utcnow()
        expiring = sorted(
            (a for a in self.lots if a.expires_at is not None and a.balance > 0),
            key=lambda a: a.expires_at,
        )
        return {
            **{kind.value: self.total(kind) for kind in TokenKind},   # standard, incentive, restricted
            "transferable": self.transferable,
            "held": self.held,
            "negative_draw_limit": self.negative_limit,
            "expiring": [
                {"tokens": a.balance, "kind": a.token_kind, "expires_at": a.expires_at}
                for a in expiring if a.expires_at > now
            ],
        }


def load_wallet(db: Session, user: User) -> Wallet:
    now = utcnow()
    accts = user_accounts(db, user.id)
    lots = [a for a in accts if a.purpose == WALLET and (a.expires_at is None or a.expires_at > now)]
    held = sum(a.balance for a in accts if a.purpose == HOLD)
    return Wallet(lots=lots, negative_limit=user.negative_limit, held=held)


def available_tokens(db: Session, user: User) -> int:
    """What the user can spend now: every unexpired token in the wallet, not on hold."""
    return load_wallet(db, user).total()


def expire_due_lots(db: Session, user_id: int) -> int:
    """Expired tokens leave the wallet by a ledger transfer (shown on the statement)."""
    now = utcnow()
    due = [a for a in user_accounts(db, user_id) if a.purpose == WALLET and a.expires_at is not None
           and a.expires_at <= now and a.balance > 0]
    if not due:
        return 0
    expired = vendor_account(db, EXPIRED)
    total = 0
    for lot in due:
        tokens = lot.balance
        total += tokens
        transfer_id = post_transfer(db, lot, expired, tokens, TransferKind.EXPIRY,
                                    f"{lot.token_kind} tokens expired {lot.expires_at:%Y-%m-%d %H:%M} UTC")
        mall_notices.expiry(db, transfer_id, tokens)
    return total


def vendor_balance(db: Session, code: str) -> int:
    """A vendor account's balance: what came in less what went out (vendor
    balances are not cached: every request would contend on their rows)."""
    ref = vendor_account(db, code)
    t = LedgerTransfer
    came = db.scalar(select(func.coalesce(func.sum(t.amount), 0)).where(t.to_account_id == ref.id))
    went = db.scalar(select(func.coalesce(func.sum(t.amount), 0)).where(t.from_account_id == ref.id))
    return int(came or 0) - int(went or 0)


def circulation(db: Session) -> int:
    """The tokens users hold (wallets and holds, negative draws included): the sum of
    their accounts' cached balances (verify_ledger checks the caches against the transfers)."""
    return int(db.scalar(select(func.coalesce(func.sum(LedgerAccount.balance), 0))
                         .where(LedgerAccount.owner_user_id.is_not(None),
                                LedgerAccount.currency == Currency.TOKEN)) or 0)


def has_due_lots(db: Session, user_id: int) -> bool:
    return db.scalar(
        select(func.count()).select_from(LedgerAccount).where(
            LedgerAccount.owner_user_id == user_id, LedgerAccount.purpose == WALLET,
            LedgerAccount.expires_at.is_not(None), LedgerAccount.expires_at <= utcnow(),
            LedgerAccount.balance > 0)
    ) > 0


# ---------------------------------------------------------------- spend order

@dataclass(frozen=True)
class SpendLine:
    """One thing to pay for; the store sets on_sale for products marked on sale."""

    tokens: int
    on_sale: bool = False


@dataclass
class SpendPlan:
    takes: list[tuple[LedgerAccount, int]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(n for _, n in self.takes)


def _expiry_key(lot: LedgerAccount):
    # soonest expiry first; never-expiring last; incentive before standard on a tie
    return (lot.expires_at is None, lot.expires_at or _NEVER,
            0 if lot.token_kind == TokenKind.INCENTIVE else 1, lot.id)


_NEVER = datetime.max.replace(tzinfo=UTC)


def spend_capacity(wallet: Wallet, lines: Sequence[SpendLine]) -> int:
    """How many of these lines' tokens the wallet can pay (restricted only for sale items)."""
    on_sale = sum(line.tokens for line in lines if line.on_sale)
    restricted = max(0, wallet.total(TokenKind.RESTRICTED))
    others = sum(a.balance for a in wallet.lots if a.token_kind != TokenKind.RESTRICTED and a.balance > 0)
    return min(on_sale, restricted) + others + _negative_headroom(wallet)


def _negative_headroom(wallet: Wallet) -> int:
    return max(0, wallet.negative_limit - wallet.debt)


def plan_spend(db: Session, user: User, lines: Sequence[SpendLine]) -> SpendPlan:
    """Which lots pay for `lines`, in the spend order. Raises InsufficientTokens."""
    for line in lines:
        if line.tokens < 0 or line.tokens > MAX_TOKENS:
            raise Invalid(f"token amounts must be between 0 and {MAX_TOKENS}")
    wallet = load_wallet(db, user)
    required = sum(line.tokens for line in lines)
    capacity = spend_capacity(wallet, lines)
    if required > capacity:
        raise InsufficientTokens(required, max(0, capacity))
    plan = SpendPlan()
    on_sale_left = sum(line.tokens for line in lines if line.on_sale)
    left = required
    restricted = sorted((a for a in wallet.lots if a.token_kind == TokenKind.RESTRICTED and a.balance > 0),
                        key=_expiry_key)
    for lot in restricted:
        n = min(lot.balance, on_sale_left)
        if n > 0:
            plan.takes.append((lot, n))
            on_sale_left -= n
            left -= n
    others = sorted((a for a in wallet.lots if a.token_kind != TokenKind.RESTRICTED and a.balance > 0),
                    key=_expiry_key)
    for lot in others:
        n = min(lot.balance, left)
        if n > 0:
            plan.takes.append((lot, n))
            left -= n
    if left > 0:  # the negative draw, always on the main standard lot
        plan.takes.append((wallet_lot(db, user.id), left))
    return plan


def plan_transferable(db: Session, user: User, tokens: int) -> SpendPlan:
    """Only standard tokens the user owns move to another user (no incentive,
    no restricted, no negative draw)."""
    wallet = load_wallet(db, user)
    if tokens > wallet.transferable:
        raise InsufficientTokens(tokens, wallet.transferable, "not enough transferable tokens")
    plan = SpendPlan()
    left = tokens
    for lot in sorted((a for a in wallet.lots if a.token_kind == TokenKind.STANDARD and a.balance > 0),
                      key=_expiry_key):
        n = min(lot.balance, left)
        if n > 0:
            plan.takes.append((lot, n))
            left -= n
    return plan


# ---------------------------------------------------------------- holds

def hold(db: Session, user: User, lines: Sequence[SpendLine], reference: str, memo: str = "") -> LedgerHold:
    """Reserve tokens for an order (caller holds the user's lock: lock_wallets).
    Post it when the licenses are issued, void it if issuing fails. `memo` is
    what the user's statement says (the hold is the line that takes the tokens)."""
    return hold_plan(db, user, plan_spend(db, user, lines), reference, memo)


def hold_plan(db: Session, user: User, plan: SpendPlan, reference: str, memo: str = "") -> LedgerHold:
    """Reserve the lots a plan takes (plan_spend, or plan_transferable for
    tokens that leave the user, as an exchange's do)."""
    h = LedgerHold(user_id=user.id, amount=plan.total, status=HoldStatus.HELD, reference=reference[:100])
    db.add(h)
    db.flush()
    dest = hold_account(db, user.id)
    for lot, n in plan.takes:
        post_transfer(db, lot, dest, n, TransferKind.HOLD, memo or f"held for {reference}", hold_id=h.id)
    return h


def _settle(db: Session, hold_id: int, user_id: int | None = None) -> LedgerHold:
    h = db.get(LedgerHold, hold_id)
    if h is None or (user_id is not None and h.user_id != user_id):
        raise NotFound("no such hold")
    if h.status != HoldStatus.HELD:
        raise Conflict(f"hold is already {h.status}")
    return h


def post_hold(db: Session, hold_id: int, memo: str = "", dest_code: str = REVENUE,
              kind: TransferKind = TransferKind.SPEND) -> LedgerHold:
    """The held tokens go to the vendor (revenue; or, for an exchange, out)."""
    h = _settle(db, hold_id)
    if h.amount > 0:
        post_transfer(db, hold_account(db, h.user_id), vendor_account(db, dest_code), h.amount,
                      kind, memo or f"spent on {h.reference}", hold_id=h.id)
    h.status, h.settled_at = HoldStatus.POSTED, utcnow()
    if dest_code == REVENUE:
        mall_notices.spend(db, h.id, h.amount, h.settled_at)   # FIG 13 step 5, once in a mall
    db.flush()
    return h


def void_hold(db: Session, hold_id: int, memo: str = "") -> LedgerHold:
    """The held tokens go back to the very lots they came from."""
    h = _settle(db, hold_id)
    src = hold_account(db, h.user_id)
    legs = db.scalars(select(LedgerTransfer).where(
        LedgerTransfer.hold_id == h.id, LedgerTransfer.to_account_id == src.id).order_by(LedgerTransfer.id)).all()
    for leg in legs:
        post_transfer(db, src, db.get(LedgerAccount, leg.from_account_id), leg.amount, TransferKind.RELEASE,
                      memo or f"released {h.reference}", hold_id=h.id)
    h.status, h.settled_at = HoldStatus.VOIDED, utcnow()
    db.flush()
    return h


def spend(db: Session, user: User, lines: Sequence[SpendLine], reference: str,
          dest_code: str = REVENUE) -> LedgerHold:
    """Hold and post at once (for a purchase that cannot fail half-way)."""
    h = hold(db, user, lines, reference)
    return post_hold(db, h.id, dest_code=dest_code)


# ---------------------------------------------------------------- verification

@dataclass
class LedgerReport:
    ok: bool
    totals: dict[str, int]
    mismatched_accounts: list[str]
    negative_wallets: list[str]


def verify_ledger(db: Session) -> LedgerReport:
    """Conservation: per currency the accounts sum to zero; every cached
    balance equals the sum of its transfers; no wallet below its limit."""
    out = dict(db.execute(select(LedgerTransfer.to_account_id, func.sum(LedgerTransfer.amount))
                          .group_by(LedgerTransfer.to_account_id)).all())
    inn = dict(db.execute(select(LedgerTransfer.from_account_id, func.sum(LedgerTransfer.amount))
                          .group_by(LedgerTransfer.from_account_id)).all())
    totals = {Currency.TOKEN: 0, Currency.CENT: 0}
    mismatched, negative = [], []
    limits = dict(db.execute(select(User.id, User.negative_limit)).all())
    per_user_wallet: dict[int, int] = {}
    for acct in db.scalars(select(LedgerAccount)).all():
        derived = int(out.get(acct.id, 0)) - int(inn.get(acct.id, 0))
        totals[acct.currency] = totals.get(acct.currency, 0) + derived
        if acct.owner_user_id is not None:
            if derived != acct.balance:
                mismatched.append(acct.code)
            if acct.purpose == HOLD and derived < 0:
                negative.append(acct.code)
            if acct.purpose == WALLET:
                if derived < 0 and not (acct.token_kind == TokenKind.STANDARD and acct.expires_at is None):
                    negative.append(acct.code)
                per_user_wallet[acct.owner_user_id] = per_user_wallet.get(acct.owner_user_id, 0) + derived
    for uid, total in per_user_wallet.items():
        if total < -limits.get(uid, 0):
            negative.append(f"user:{uid}")
    ok = all(v == 0 for v in totals.values()) and not mismatched and not negative
    return LedgerReport(ok, totals, mismatched, negative)


def statement(db: Session, user_id: int, limit: int = 200, before_id: int | None = None) -> list[dict]:
    """The user's movements, newest first, each with the wallet balance after it."""
    owned = {a.id: a for a in db.scalars(select(LedgerAccount).where(LedgerAccount.owner_user_id == user_id))}
    if not owned:
        return []
    q = select(LedgerTransfer).where(
        (LedgerTransfer.from_account_id.in_(owned)) | (LedgerTransfer.to_account_id.in_(owned)))
    if before_id is not None:
        q = q.where(LedgerTransfer.id < before_id)
    rows = db.scalars(q.order_by(LedgerTransfer.id.desc()).limit(limit)).all()
    result = []
    for t in rows:
        src, dst = owned.get(t.from_account_id), owned.get(t.to_account_id)
        change = 0
        if src is not None and src.purpose == WALLET:
            change -= t.amount
        if dst is not None and dst.purpose == WALLET:
            change += t.amount
        held_change = 0
        if src is not None and src.purpose == HOLD:
            held_change -= t.amount
        if dst is not None and dst.purpose == HOLD:
            held_change += t.amount
        after = t.to_wallet_after if dst is not None else t.from_wallet_after
        lot = src if src is not None and src.purpose == WALLET else dst if dst is not None and dst.purpose == WALLET else None
        result.append({
            "id": t.id, "at": t.created_at, "kind": t.kind, "memo": t.memo,
            "tokens": change, "held_change": held_change,
            "token_kind": lot.token_kind if lot is not None else None,
            "balance_after": after,
        })
    return result
