"""Typed dependencies for routes:

- DbSession: a read transaction (no writes; see db.py).
- WriteDb: a write transaction, committed when the route returns normally,
  rolled back on any error.
- CurrentUser / AdminUser: the bearer token's user (401 / 403).
- IdempotencyKey: the optional Idempotency-Key header; declare it as
  `idempotency_key: IdempotencyKey = None` and pass it to
  services.idempotency.run_idempotent).
- ClientAddress: the caller's address as the rate limits count it (the
  socket peer, or X-Forwarded-For from a trusted proxy).
- SignedIn: the bearer token and address, resolved by a hot route in its one worker-thread
  call (api/worker.py) as `signed_in.user()`, `.pin_caller()` or `.card_caller()`.
- PinCaller / CardCaller: CurrentUser for PIN-checked and card calls, loaded
  with its rate-limit state in the same statement. PinCaller refuses at once
  (429) when the caller is limited; CardCaller leaves it to the route
  (`caller.refuse_if_limited()`), since only card purchases are limited.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypeVar
from collections.abc import Callable, Iterator

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from ..db import new_session, single_statement
from ..models.user import User
from ..schemas.common import MAX_ID
from ..services import rate_limits
from ..loop_reads import first_row
from ..services.accounts import SESSION_QUERY, live_user, session_params, user_for_token
from ..services.errors import ApiError, Forbidden
from .worker import in_worker


T = TypeVar("T")


def _read_db() -> Iterator[Session]:
    db = new_session(write=False)
    try:
        yield db
    finally:
        db.close()


def _write_db() -> Iterator[Session]:
    db = new_session(write=True)
    try:
        yield db
        db.commit()
    except BaseException:
        db.rollback()
        raise
    finally:
        db.close()


DbSession = Annotated[Session, Depends(_read_db, scope="function")]
# scope="function": commit BEFORE the response is sent (a client that got 2xx finds the data)
WriteDb = Annotated[Session, Depends(_write_db, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="token from POST /v1/sessions")


class Unauthorized(ApiError):
    status_code = 401


# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in a worker
# thread, and each hop to a thread and back costs more CPU than the work of these.

async def bearer_token(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise Unauthorized("missing bearer token")
    if len(creds.credentials) > 200:
        raise Unauthorized("invalid or expired session")
    return creds.credentials


BearerToken = Annotated[str, Depends(bearer_token)]


def _signed_in(load: Callable[[Connection], T | None]) -> T:
    """`load(conn)`, one statement (see db.single_statement); its user is detached (every
    column loaded). None is a 401."""
    with single_statement() as conn:
        found = load(conn)
    if found is None:
        raise Unauthorized("invalid or expired session")
    return found


def user_of_token(token: str) -> User:
    return _signed_in(lambda conn: user_for_token(conn, token))


# The lookups below are async dependencies that make their one hop to a worker thread with
# in_worker (anyio's hop, which FastAPI gives a plain `def` dependency, costs twice as much).

async def current_user(token: BearerToken) -> User:
    # on the loop, no worker thread: the lookup takes no lock (loop_reads)
    row = await first_row(SESSION_QUERY, session_params(token))
    user = None if row is None else live_user(row)
    if user is None:
        raise Unauthorized("invalid or expired session")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


async def client_address(request: Request) -> str:
    peer = request.client.host if request.client else None
    return rate_limits.client_address(peer, request.headers.getlist("x-forwarded-for"))


ClientAddress = Annotated[str, Depends(client_address)]


def _guarded_caller(guard: str, token: str, address: str) -> rate_limits.Caller:
    return _signed_in(lambda conn: rate_limits.signed_in_caller(conn, token, guard, address))


def pin_caller_of(token: str, address: str) -> rate_limits.Caller:
    caller = _guarded_caller(rate_limits.PIN, token, address)
    caller.refuse_if_limited()
    return caller


def card_caller_of(token: str, address: str) -> rate_limits.Caller:
    return _guarded_caller(rate_limits.CARD, token, address)


async def pin_caller(token: BearerToken, address: ClientAddress) -> rate_limits.Caller:
    return await in_worker(pin_caller_of, token, address)


async def card_caller(token: BearerToken, address: ClientAddress) -> rate_limits.Caller:
    return await in_worker(card_caller_of, token, address)


PinCaller = Annotated[rate_limits.Caller, Depends(pin_caller)]
CardCaller = Annotated[rate_limits.Caller, Depends(card_caller)]


@dataclass(frozen=True)
class Credentials:
    """The bearer token and the caller's address, not yet looked up: a hot route (api/worker.py)
    resolves them in its one worker-thread call, with the same rules as the dependencies above."""

    token: str
    address: str

    def user(self) -> User:
        return user_of_token(self.token)

    def pin_caller(self) -> rate_limits.Caller:
        return pin_caller_of(self.token, self.address)

    def card_caller(self) -> rate_limits.Caller:
        return card_caller_of(self.token, self.address)


async def credentials(token: BearerToken, address: ClientAddress) -> Credentials:
    return Credentials(token, address)


SignedIn = Annotated[Credentials, Depends(credentials)]


async def admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise Forbidden("admins only")
    return user


AdminUser = Annotated[User, Depends(admin_user)]

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200, pattern=r"^[\x21-\x7e]{1,200}$",
           description="repeat a request safely: same key + same body = same answer, applied once; "
                       "1-200 printable ASCII characters, no spaces"),
]

# Path ids are bounded so a huge number is a 422, never a database overflow.
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
