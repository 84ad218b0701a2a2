"""Rate limits on guessing: sign-in, registration, PIN and card attempts,
per client address and per account, counted in the database so that every
server process (and host) shares them.

Algorithm: GCRA (the generic cell rate algorithm, a leaky bucket kept as one
number). A limit "COUNT per SECONDS" has an emission interval T =
SECONDS/COUNT and a burst tolerance tau = SECONDS - T. Each key (bucket,
subject) is one row holding its theoretical arrival time (TAT). A hit is
allowed while TAT <= now + tau, and moves TAT to max(TAT, now) + T: a burst
of COUNT at once, then one every T. Counting a hit is one UPSERT, checking
one indexed read; no timestamps per hit, no second window row. A row whose
TAT has passed means "nothing counted", so the sweep deletes it and the table
stays as large as the keys counted in the last window.

What is counted (docs/admin-guide.md): refused sign-ins (401, 423) and wrong
PINs per address and per account, declined cards per address and per
account, and every registration per address. Successes are not counted.

Where it is checked:
- sign-in: a hit is reserved (counted, strictly: 429 when it does not fit)
  before the password is checked, and given back when the sign-in succeeds,
  so a burst in parallel cannot test more passwords than the limit allows;
- registration and wrong PINs: counted strictly in their own short
  transaction before the operation runs (429: nothing happened);
- PIN-checked and card calls are gated by the limit state read in the same
  statement that loads the session's user (no extra round trip on the money
  path); a declined card is counted inside the purchase's own transaction.
Every 429 is raised before run_idempotent runs the operation, so nothing is
stored under the Idempotency-Key.

Time is the server process's clock (like lockouts and sessions): hosts that
share a database keep their clocks in sync (NTP).
"""
from __future__ import annotations

import ipaddress
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from collections.abc import Callable, Iterator, Sequence

from sqlalchemy import BigInteger, Connection, Select, and_, bindparam, case, delete, select, tuple_, update
from sqlalchemy.orm import Session, aliased

from ..db_types import conflict_insert
from ..core.config import ENV_PREFIX, Settings, get_settings
from ..db import write_session
from ..models.rate_limit import RateLimit
from ..models.user import User
from .accounts import SESSION_COLUMNS, SESSION_QUERY, BadCredentials, live_user, session_params
from .errors import CardDeclined, Locked, TooManyRequests
from .idempotency import Outcome

SIGN_IN = "sign_in"
REGISTRATION = "registration"
PIN = "pin"
CARD = "card_declines"

# what the 429's detail calls the counted attempts
_WHAT = {SIGN_IN: "failed sign-ins", REGISTRATION: "registrations", PIN: "wrong PINs",
         CARD: "declined cards"}
SWEEP_BATCH = 100  # expired rows deleted per counting transaction (bounded work)
UNKNOWN_ADDRESS = "unknown"

_t = RateLimit.__table__


# ---------------------------------------------------------------- configuration

@dataclass(frozen=True)
class Rate:
    """At most `count` hits in any `seconds` (GCRA)."""

    count: int
    seconds: int

    @property
    def interval_ms(self) -> int:          # T
        return max(1, self.seconds * 1000 // self.count)

    @property
    def tolerance_ms(self) -> int:         # tau: how far ahead of now TAT may be before a hit
        return self.seconds * 1000 - self.interval_ms

    def wait_ms(self, tat_ms: int | None, now_ms: int) -> int:
        """How long until one more hit fits (<= 0: it fits now)."""
        return -1 if tat_ms is None else tat_ms - self.tolerance_ms - now_ms


@dataclass(frozen=True)
class Guard:
    """The limits one kind of attempt is counted against (None: not limited)."""

    name: str
    per_address: Rate | None
    per_account: Rate | None


@dataclass(frozen=True)
class Policy:
    guards: dict[str, Guard]
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def parse_rate(setting: str, value: str) -> Rate | None:
    """'COUNT/SECONDS' -> Rate; 'off' (or '0', '') -> None. Anything else is
    an error that stops the server at start, naming the variable."""
    text = value.strip().lower()
    if text in ("", "0", "off", "none"):
        return None
    count, sep, seconds = text.partition("/")
    try:
        rate = Rate(int(count), int(seconds)) if sep else None
    except ValueError:
        rate = None
    if rate is None or rate.count < 1 or rate.seconds < 1 or rate.count > rate.seconds * 1000:
        raise ValueError(f"{ENV_PREFIX}{setting.upper()} must be COUNT/SECONDS (e.g. 20/3600) or off, "
                         f"not {value!r}")
    return rate


def parse_networks(value: str) -> tuple:
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False)
                     for part in value.split(",") if part.strip())
    except ValueError as e:
        raise ValueError(f"{ENV_PREFIX}TRUSTED_PROXIES: {e}") from None


@lru_cache(maxsize=8)
def policy(settings: Settings) -> Policy:
    def rate(name: str) -> Rate | None:
        setting = f"rate_limit_{name}"
        r = parse_rate(setting, getattr(settings, setting))  # parsed even when disabled: typos fail early
        return r if settings.rate_limits_enabled else None

    guards = {
        SIGN_IN: Guard(SIGN_IN, rate("sign_in_per_address"), rate("sign_in_per_account")),
        REGISTRATION: Guard(REGISTRATION, rate("registrations_per_address"), None),
        PIN: Guard(PIN, rate("pin_per_address"), rate("pin_per_account")),
        CARD: Guard(CARD, rate("card_declines_per_address"), rate("card_declines_per_account")),
    }
    return Policy(guards, parse_networks(settings.trusted_proxies))


def _guard(name: str) -> Guard:
    return policy(get_settings()).guards[name]


# ---------------------------------------------------------------- the client address

def _ip(text: str):
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def address_key(ip) -> str:
    """What one client is counted as: an IPv4 address, or an IPv6 /64 (one
    subscriber usually holds a whole /64, so single IPv6 addresses are free)."""
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence | None = None) -> str:
    """The client's address key. The socket peer, unless it is a trusted
    proxy: then X-Forwarded-For is read from the right (the hop our proxy
    added) past every trusted proxy to the first address that is not one.
    Entries left of that were written by the client and are not believed."""
    trusted = policy(get_settings()).trusted_proxies if trusted is None else trusted
    ip = _ip(peer) if peer else None
    if ip is None:
        return UNKNOWN_ADDRESS
    hops = [h for value in forwarded_for for h in value.split(",") if h.strip()]
    while hops and any(ip in net for net in trusted):
        hop = _ip(hops.pop())
        if hop is None:  # garbage from the proxy's side: count it as the proxy itself
            break
        ip = hop
    return address_key(ip)


# ---------------------------------------------------------------- counting

def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _keys(guard: Guard, address: str, account: str | None) -> list[tuple[str, str, Rate]]:
    """(bucket, subject, rate) in a fixed order, so that transactions counting
    the same keys lock their rows in the same order (no deadlocks)."""
    keys = []
    if guard.per_account is not None and account is not None:
        keys.append((f"{guard.name}:account", account, guard.per_account))
    if guard.per_address is not None:
        keys.append((f"{guard.name}:address", address, guard.per_address))
    return sorted(keys, key=lambda k: (k[0], k[1]))


def _ms(name: str, value: int):
    return bindparam(name, value, type_=BigInteger)


def _hit(db: Session, bucket: str, subject: str, rate: Rate, now: int, strict: bool) -> bool:
    """Count one hit on a key (one UPSERT). Strict: only if it fits (False if not)."""
    step = _ms("step", rate.interval_ms)
    stmt = conflict_insert(db, _t).values(bucket=bucket, subject=subject, tat_ms=_ms("first", now + rate.interval_ms))
    later = case((_t.c.tat_ms > _ms("now", now), _t.c.tat_ms), else_=_ms("now2", now)) + step
    stmt = stmt.on_conflict_do_update(
        index_elements=[_t.c.bucket, _t.c.subject], set_={"tat_ms": later},
        where=(_t.c.tat_ms <= _ms("limit", now + rate.tolerance_ms)) if strict else None,
    ).returning(_t.c.tat_ms)
    return db.execute(stmt).first() is not None


def _sweep(db: Session, now: int) -> None:
    """Delete up to SWEEP_BATCH expired rows (on PostgreSQL skipping rows other
    transactions hold, so the sweep never waits and never deadlocks)."""
    doomed = select(_t.c.bucket, _t.c.subject).where(_t.c.tat_ms < _ms("now", now)).limit(SWEEP_BATCH)
    if db.get_bind().dialect.name != "sqlite":
        doomed = doomed.with_for_update(skip_locked=True)
    db.execute(delete(_t).where(tuple_(_t.c.bucket, _t.c.subject).in_(doomed)))


def _refusal(guard: Guard, wait_ms: int) -> TooManyRequests:
    seconds = max(1, math.ceil(wait_ms / 1000))
    return TooManyRequests(f"too many {_WHAT[guard.name]}: try again in {seconds} seconds",
                           retry_after=seconds)


def _longest_wait(db: Session, keys, now: int) -> int:
    waits = [rate.wait_ms(db.scalar(select(_t.c.tat_ms).where(_t.c.bucket == b, _t.c.subject == s)), now)
             for b, s, rate in keys]
    return max([1, *waits])


def count_attempt(guard_name: str, address: str, account: str | None = None) -> None:
    """Count one attempt against every limit of the guard, in its own short
    transaction; if any limit is already reached, count nothing and raise 429."""
    guard = _guard(guard_name)
    keys = _keys(guard, address, account)
    if not keys:
        return
    now = _now_ms()
    refused = None
    with write_session() as db:
        for i, (bucket, subject, rate) in enumerate(keys):
            if not _hit(db, bucket, subject, rate, now, strict=True):
                # the keys before this one fit (and were just moved on): the wait is this key's
                # or a later one's, all still as committed
                refused = _refusal(guard, _longest_wait(db, keys[i:], now))
                db.rollback()  # a refused attempt is not counted (nor are the keys before it)
                break
        else:
            _sweep(db, now)
    if refused is not None:
        raise refused


def _give_back(guard: Guard, address: str, account: str | None) -> None:
    keys = _keys(guard, address, account)
    if not keys:
        return
    with write_session() as db:
        for bucket, subject, rate in keys:
            db.execute(update(_t).where(_t.c.bucket == bucket, _t.c.subject == subject)
                       .values(tat_ms=_t.c.tat_ms - _ms("step", rate.interval_ms)))


@contextmanager
def sign_in_attempt(address: str, username: str) -> Iterator[None]:
    """Around a sign-in: reserve one failure before the password is checked
    (429 if none is left), keep it if the sign-in is refused (401, 423), give
    it back otherwise."""
    guard = _guard(SIGN_IN)
    count_attempt(SIGN_IN, address, username)
    failed = False
    try:
        yield
    except (BadCredentials, Locked):
        failed = True
        raise
    finally:
        if not failed:
            _give_back(guard, address, username)


def counting_declines(address: str, account: str,
                      operation: Callable[[Session], Outcome]) -> Callable[[Session], Outcome]:
    """Wrap a token-purchase operation so that a declined card is counted in
    the purchase's own transaction (a replayed answer runs nothing and counts
    nothing). A decline has already happened, so it is counted even beyond
    the limit; the next card attempt is refused up front."""
    def run(db: Session) -> Outcome:
        try:
            return operation(db)
        except CardDeclined:
            # committed with the stored refusal (CardDeclined keeps its writes)
            guard, now = _guard(CARD), _now_ms()
            for bucket, subject, rate in _keys(guard, address, account):
                _hit(db, bucket, subject, rate, now, strict=False)
            raise

    return run


# ---------------------------------------------------------------- gating a signed-in caller

@dataclass(frozen=True)
class Caller:
    """A signed-in user, where they call from, and how long the guard's limits
    still refuse them (0: not limited)."""

    user: User
    address: str
    guard: str
    wait_ms: int = 0

    def refuse_if_limited(self) -> None:
        if self.wait_ms > 0:
            raise _refusal(_guard(self.guard), self.wait_ms)


# the two rate-limit rows a guarded sign-in joins
_ACCOUNT_ROW = aliased(RateLimit, name="limit_account")
_ADDRESS_ROW = aliased(RateLimit, name="limit_address")


@lru_cache(maxsize=16)
def _guarded_session_query(guard: Guard) -> tuple[Select, tuple[Rate, ...]]:
    """SESSION_QUERY with the guard's rate-limit rows outer-joined, built once
    per guard (as SESSION_QUERY, so that a call binds parameters only), and
    the rates whose row times follow the session and user columns."""
    query, rates = SESSION_QUERY, []
    for row, bucket, rate, subject in ((_ACCOUNT_ROW, f"{guard.name}:account", guard.per_account, User.username),
                                       (_ADDRESS_ROW, f"{guard.name}:address", guard.per_address,
                                        bindparam("address"))):
        if rate is not None:
            query = query.outerjoin(row, and_(row.bucket == bucket, row.subject == subject)).add_columns(row.tat_ms)
            rates.append(rate)
    return query, tuple(rates)


def signed_in_caller(conn: Connection, token: str, guard_name: str, address: str) -> Caller | None:
    """The bearer token's live user with the guard's limit state, read in ONE
    statement (the session lookup every authenticated call makes anyway, with
    the two rate-limit rows outer-joined): gating adds no round trip."""
    query, rates = _guarded_session_query(_guard(guard_name))
    # "address" is bound even when the query has no address row: unused parameters are ignored
    found = conn.execute(query, {**session_params(token), "address": address}).first()
    user = None if found is None else live_user(found)
    if user is None:
        return None
    now = _now_ms()
    wait = max([0, *(rate.wait_ms(tat, now) for rate, tat in zip(rates, found[SESSION_COLUMNS:], strict=True))])
    return Caller(user, address, guard_name, wait)
