"""This vendor in the mall network (docs/mall.md): its membership and copy of
the MSP's directory, accounts for users of other members, exchange quotes and
exchanges (FIG 15). Runs inside the caller's transaction, as the ledger does."""
from __future__ import annotations

import json
import secrets
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models.base import utcnow
from ..models.mall import Exchange, ExchangeQuote, MallInboxMessage, MallLink, MallMembership, MallOutboxMessage
from ..models.user import User
from ..network.directory import Directory, DirectoryError, MemberEntry
from ..network.money import UNITS_PER_CENT, ExchangeRefused, FeeSchedule, exchange_amounts, split_value
from ..vocabulary import AccountStatus, ExchangeStatus, Role, TokenKind, TransferKind
from . import ledger, mall_notices
from .accounts import require_active
from .errors import Conflict, Forbidden, Invalid, NotFound
from .idempotency import Outcome

QUOTE_TTL = timedelta(minutes=5)
BACKUP_KIND = "backup.snapshot"   # the outbox kind of FIG 14's backups (mall_backup.BackupKind)
MEMBERSHIP_ROW = 1
# Local usernames never hold "~" (schemas/user.py), so these cannot collide.
LINKED_USERNAME = "~{member}~{user}"


class UnknownMember(NotFound):
    """A member id our copy of the directory does not hold (yet)."""

    def __init__(self, member_id: str) -> None:
        super().__init__(f"no member {member_id} in the mall")


class NotInMall(Conflict):
    def __init__(self) -> None:
        super().__init__("this store has not joined a mall")


# ---------------------------------------------------------------- membership and directory

def membership(db: Session) -> MallMembership | None:
    return db.get(MallMembership, MEMBERSHIP_ROW)


def record_membership(db: Session, *, member_id: str, msp_url: str, msp_key: str,
                      directory: dict[str, Any], opening: bool = True) -> MallMembership:
    """What join-mall learnt: who this vendor is in the mall, the MSP it pins,
    and the first copy of the directory; and (`opening`) the counts it joins with,
    for the MSP. A restore (mall_backup) records an old membership: the MSP has
    had that member's opening since it joined."""
    if membership(db) is not None:
        raise Conflict("this store has already joined a mall")
    # No token may move while the store joins, so that the opening counts told to the MSP and
    # the notices of every later sale, grant, spend and expiry add up to its circulation. On
    # SQLite the write transaction already excludes every other writer.
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("LOCK TABLE ledger_transfers IN SHARE ROW EXCLUSIVE MODE"))
    mall_notices.forget_membership(db)
    row = MallMembership(id=MEMBERSHIP_ROW, member_id=member_id, msp_url=msp_url.rstrip("/"), msp_key=msp_key,
                         directory_version=0, directory_json="")
    db.add(row)
    store_directory(db, row, directory)
    if opening:
        mall_notices.opening(db, issued=-ledger.vendor_balance(db, ledger.ISSUANCE),
                             granted=-ledger.vendor_balance(db, ledger.PROMOTIONS),
                             spent=ledger.vendor_balance(db, ledger.REVENUE),
                             expired=ledger.vendor_balance(db, ledger.EXPIRED))
    return row


def store_directory(db: Session, row: MallMembership, raw: dict[str, Any]) -> Directory:
    """Keep a newer directory (an older or equal version is ignored)."""
    try:
        parsed = Directory.parse(raw)
    except DirectoryError as e:
        raise Invalid(f"the MSP's directory is malformed: {e}") from None
    if parsed.msp_key != row.msp_key:
        raise Forbidden("the directory names another MSP key than the one this store pinned")
    if parsed.version > row.directory_version or not row.directory_json:
        row.directory_version, row.directory_json = parsed.version, json.dumps(raw)
    row.directory_fetched_at = utcnow()
    db.flush()
    return parsed


def directory(db: Session) -> tuple[MallMembership, Directory]:
    row = membership(db)
    if row is None:
        raise NotInMall()
    return row, Directory.parse(json.loads(row.directory_json))


def mall_view(db: Session) -> dict[str, Any]:
    """GET /v1/mall."""
    row, d = directory(db)
    return {"member_id": row.member_id, "msp_url": row.msp_url, "directory_version": d.version,
            "members": [{"member_id": m.member_id, "name": m.name, "base_url": m.base_url,
                         "token": {"name": m.token_name, "value_cents": m.token_value_cents},
                         "status": m.status} for m in d.members.values()]}


def _fees(raw_directory: dict[str, Any], member_id: str) -> FeeSchedule:
    for m in raw_directory.get("members", []):
        if m.get("member_id") == member_id and isinstance(m.get("fees"), dict):
            f = m["fees"]
            return FeeSchedule(int(f.get("service_charge_bp", 0)), int(f.get("royalty_bp", 0)),
                               int(f.get("fixed_fee_cents", 0)))
    return FeeSchedule()


# ---------------------------------------------------------------- linked accounts

def linked_user(db: Session, home_member_id: str, home_user_id: str, full_name: str) -> User:
    """The local account of a user registered at another member, created on
    first use: no password and no PIN (it signs in only with an assertion from
    its home member), active at once (its home member registered it)."""
    def existing() -> User | None:
        link = db.scalar(select(MallLink).where(MallLink.home_member_id == home_member_id,
                                                MallLink.home_user_id == home_user_id))
        return db.get(User, link.user_id) if link is not None else None

    found = existing()
    if found is not None:
        return found
    unusable = "!" + secrets.token_hex(16)   # no argon2 hash: no password or PIN ever matches
    user = User(username=LINKED_USERNAME.format(member=home_member_id, user=home_user_id)[:32],
                password_hash=unusable, pin_hash=unusable, full_name=full_name[:100] or "Mall user",
                email="", role=Role.USER, status=AccountStatus.ACTIVE)
    try:
        with db.begin_nested():
            db.add(user)
            db.flush()
            db.add(MallLink(user_id=user.id, home_member_id=home_member_id, home_user_id=home_user_id))
            db.flush()
    except IntegrityError:
        # created by a request at the same time (PostgreSQL: an issue and a sign-on, or two
        # issues, for one new customer): its insert made ours wait, then fail; use its account
        found = existing()
        if found is None:
            raise
        return found
    return user


# ---------------------------------------------------------------- exchanges (FIG 15)

def _members_for_exchange(row: MallMembership, d: Directory, to_member: str) -> tuple[MemberEntry, MemberEntry]:
    me, to = d.member(row.member_id), d.member(to_member)
    if me is None:
        raise Forbidden("this store is no longer in the mall's directory")
    if to is None:
        raise UnknownMember(to_member)
    if to.member_id == me.member_id:
        raise Invalid("exchange into another member's tokens, not this store's own")
    if not me.active:
        raise Forbidden("this store is blocked in the mall: it takes no new exchanges")
    if not to.active:
        raise Forbidden(f"{to.name} is blocked in the mall: it takes no new exchanges")
    if not to.accepts_tokens_of(me.member_id):
        raise Forbidden(f"{to.name} does not accept {me.token_name}")
    return me, to


def quote_exchange(db: Session, user: User, to_member: str, tokens: int) -> ExchangeQuote:
    require_active(user)
    row, d = directory(db)
    me, to = _members_for_exchange(row, d, to_member)
    try:
        x = exchange_amounts(tokens, me.token_value_cents, to.token_value_cents)
    except ExchangeRefused as e:
        raise Invalid(str(e)) from None
    split = split_value(x.value_cents, _fees(json.loads(row.directory_json), me.member_id))
    fee_units = split.service_charge_units + split.royalty_units + split.fixed_fee_units
    now = utcnow()
    quote = ExchangeQuote(id=str(uuid.uuid4()), user_id=user.id, to_member_id=to.member_id, tokens_asked=tokens,
                          tokens_from=x.tokens_from, tokens_to=x.tokens_to, value_from_cents=me.token_value_cents,
                          value_to_cents=to.token_value_cents, value_cents=x.value_cents,
                          fees_cents=fee_units // UNITS_PER_CENT, directory_version=d.version,
                          created_at=now, expires_at=now + QUOTE_TTL)
    db.add(quote)
    db.flush()
    return quote


def quote_view(q: ExchangeQuote, d: Directory | None = None) -> dict[str, Any]:
    return {"quote_id": q.id, "to_member": q.to_member_id, "tokens_asked": q.tokens_asked,
            "tokens_from": q.tokens_from, "tokens_to": q.tokens_to, "value_from_cents": q.value_from_cents,
            "value_to_cents": q.value_to_cents, "value_cents": q.value_cents, "fees_cents": q.fees_cents,
            "expires_at": q.expires_at}


def exchange_view(x: Exchange) -> dict[str, Any]:
    return {"id": x.id, "status": x.status, "to_member": x.to_member_id, "tokens_from": x.tokens_from,
            "tokens_to": x.tokens_to, "value_cents": x.value_cents, "reason": x.reason,
            "created_at": x.created_at, "finished_at": x.finished_at}


def confirm_exchange(db: Session, user_id: int, quote_id: str) -> tuple[Exchange, ExchangeQuote]:
    """Step 1 of the saga, in the caller's transaction: check the quote still
    holds, hold the tokens that move, record the exchange as pending. The
    caller adds the outbox message to the MSP in the same transaction."""
    user = ledger.lock_wallets(db, user_id)[user_id]
    require_active(user)
    quote = db.get(ExchangeQuote, quote_id)
    if quote is None or quote.user_id != user_id:
        raise NotFound("no such quote")
    if db.scalar(select(Exchange.id).where(Exchange.quote_id == quote.id)) is not None:
        raise Conflict("this quote was already used: ask for a new one")
    if quote.expires_at <= utcnow():
        raise Conflict("the quote has expired: ask for a new one", reason="quote_expired")
    row, d = directory(db)
    me, to = _members_for_exchange(row, d, quote.to_member_id)
    if (me.token_value_cents, to.token_value_cents) != (quote.value_from_cents, quote.value_to_cents):
        raise Conflict("a token value changed since the quote: ask for a new one", reason="rate_changed")
    plan = ledger.plan_transferable(db, user, quote.tokens_from)
    exchange_id = str(uuid.uuid4())
    hold = ledger.hold_plan(db, user, plan, reference=f"exchange {exchange_id}",
                            memo=f"held for an exchange into {quote.tokens_to} {to.token_name} at {to.name}")
    x = Exchange(id=exchange_id, user_id=user.id, quote_id=quote.id, to_member_id=to.member_id,
                 tokens_from=quote.tokens_from, tokens_to=quote.tokens_to, value_cents=quote.value_cents,
                 hold_id=hold.id, status=ExchangeStatus.PENDING)
    db.add(x)
    db.flush()
    return x, quote


def confirmed(x: Exchange) -> Outcome:
    return Outcome(201, exchange_view(x))


def finish_exchange(db: Session, exchange_id: str, completed: bool, reason: str = "") -> Exchange:
    """The MSP's result (the last step): post the held tokens out of this
    store, or give them back. A repeated result changes nothing."""
    x = db.get(Exchange, exchange_id)
    if x is None:
        raise NotFound("no such exchange")
    ledger.lock_wallets(db, x.user_id)
    db.refresh(x)
    if x.status != ExchangeStatus.PENDING:
        if (x.status == ExchangeStatus.COMPLETED) != completed:
            raise Conflict(f"the exchange is already {x.status}")
        return x
    if completed:
        ledger.post_hold(db, x.hold_id, memo=f"exchanged into {x.tokens_to} tokens of {x.to_member_id}",
                         dest_code=ledger.EXCHANGED_OUT, kind=TransferKind.EXCHANGE_OUT)
        x.status = ExchangeStatus.COMPLETED
    else:
        ledger.void_hold(db, x.hold_id, memo=f"exchange failed: {reason}"[:200])
        x.status = ExchangeStatus.FAILED
    x.reason, x.finished_at = reason[:300], utcnow()
    db.flush()
    return x


def issue_for_exchange(db: Session, *, operation_id: str, home_member_id: str, home_user_id: str,
                       full_name: str, tokens: int, from_member_name: str) -> dict[str, Any]:
    """At the receiving member (step 3): put the exchanged tokens into the
    linked account of the user. Called once per operation (the inbox)."""
    if tokens < 1:
        raise Invalid("tokens must be at least 1")
    user = linked_user(db, home_member_id, home_user_id, full_name)
    ledger.lock_wallets(db, user.id)
    ledger.credit_tokens(db, user, tokens, ledger.EXCHANGED_IN, TransferKind.EXCHANGE_IN,
                         f"exchanged in from {from_member_name} ({operation_id})", token_kind=TokenKind.STANDARD)
    return {"operation_id": operation_id, "user_id": user.id, "tokens": tokens}


# ---------------------------------------------------------------- audit (docs/mall.md)

def audit_view(db: Session) -> dict[str, Any]:
    """What the MSP's audit compares with its own records: this ledger's
    conservation, the tokens that left and arrived by exchanges, every
    exchange out of this store and every issue into it."""
    report = ledger.verify_ledger(db)
    row = membership(db)
    exchanges = [{"operation_id": x.id, "status": x.status, "tokens_from": x.tokens_from, "tokens_to": x.tokens_to,
                  "value_cents": x.value_cents} for x in db.scalars(select(Exchange).order_by(Exchange.created_at))]
    issues = []
    for m in db.scalars(select(MallInboxMessage).where(MallInboxMessage.answer_status == 200)):
        body = json.loads(m.answer_body)
        if isinstance(body, dict) and "tokens" in body and "operation_id" in body:
            issues.append({"operation_id": body["operation_id"], "tokens": body["tokens"]})
    # FIG 14's backups move nothing: one waiting for the MSP is no operation in flight
    pending = db.scalar(select(func.count()).select_from(MallOutboxMessage)
                        .where(MallOutboxMessage.status == "pending", MallOutboxMessage.kind != BACKUP_KIND))
    return {"member_id": row.member_id if row else None, "ledger_ok": report.ok, "ledger_totals": report.totals,
            "outbox_pending": int(pending or 0),
            "exchanged_out_tokens": ledger.vendor_balance(db, ledger.EXCHANGED_OUT),
            "exchanged_in_tokens": -ledger.vendor_balance(db, ledger.EXCHANGED_IN),
            "circulation_tokens": ledger.circulation(db),
            "exchanges": exchanges, "issues": issues}
