"""Accounts: registration, activation, sign-in, sessions, lockouts, PINs."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, bindparam, delete, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..core.config import get_settings
from ..core.security import (
    burn_verify_time, hash_pin, hash_secret, new_session_token, token_digest, verify_pin, verify_secret,
)
from ..db import detached
from ..models.base import utcnow
from ..models.user import User, UserSession
from ..vocabulary import AccountStatus, Role, TokenKind, TransferKind
from . import ledger
from .errors import ApiError, Conflict, Locked, NotFound
from .pricing import policy
from .idempotency import KeepsWrites


def create_user(db: Session, *, username: str, password: str, pin: str, full_name: str,
                email: str, address: str | None = None, phone: str | None = None,
                role: str = Role.USER) -> User:
    password_hash, pin_hash = hash_secret(password), hash_pin(pin)  # before the transaction begins
    if db.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict("username is taken")
    user = User(username=username, password_hash=password_hash, pin_hash=pin_hash,
                full_name=full_name, email=email, address=address, phone=phone, role=role,
                status=AccountStatus.INACTIVE,
                preferred=False, negative_limit=0, failed_logins=0, failed_pins=0, card_declines=0)
    db.add(user)
    try:
        db.flush()
    except IntegrityError:
        raise Conflict("username is taken") from None
    grant = policy(db).registration_grant_tokens
    granted = grant > 0 and role == Role.USER
    if granted:
        ledger.lock_wallets(db, user.id)
        ledger.credit_tokens(db, user, grant, ledger.PROMOTIONS, TransferKind.GRANT,
                             "free registration tokens", token_kind=TokenKind.INCENTIVE)
    activate_if_funded(db, user, registration_grant=granted)
    return user


def activate_if_funded(db: Session, user: User, *, registration_grant: bool = False) -> None:
    """The one activation rule (FIG 3), called after every credit to a wallet:
    an account becomes active once it holds the vendor's minimum (MT). The
    vendor's free registration tokens stand in for the minimum purchase, even
    below MT; an admin has no wallet and is active from the start."""
    if user.status == AccountStatus.ACTIVE:
        return
    if (user.role == Role.ADMIN or registration_grant
            or ledger.available_tokens(db, user) >= policy(db).min_tokens):
        user.status = AccountStatus.ACTIVE
        db.flush()


def require_active(user: User) -> None:
    if user.status != AccountStatus.ACTIVE:
        raise AccountInactive("account is inactive: buy the minimum number of tokens first",
                              account_status=AccountStatus.INACTIVE)


# ---------------------------------------------------------------- lockouts

def _is_locked(until: datetime | None) -> bool:
    return until is not None and until > utcnow()


def _locked_error(what: str, until: datetime, error: type[Locked] = Locked) -> Locked:
    return error(f"too many failed {what}: locked until {until.isoformat()}",
                 locked_until=until.isoformat())


def _record_failure(user: User, counter: str, until_field: str) -> None:
    s = get_settings()
    n = getattr(user, counter) + 1
    setattr(user, counter, n)
    if n >= s.max_failed_attempts:
        setattr(user, until_field, utcnow() + timedelta(seconds=s.lockout_seconds))
        setattr(user, counter, 0)


class BadCredentials(ApiError):
    status_code = 401


class WrongPin(KeepsWrites, ApiError):
    """The failure it counts is committed with the (stored) refusal."""
    status_code = 403
    problem = "wrong-pin"


class AccountInactive(ApiError):
    status_code = 403
    problem = "account-inactive"


class PinLockedNow(KeepsWrites, Locked):
    """The failure that engaged the PIN lockout: the lock is committed."""


def authenticate(username: str, password: str) -> tuple[str, datetime]:
    """Sign in: (token, expires_at). The password is verified outside any
    write transaction (argon2 is slow); the outcome is then recorded in one.
    A failure is COMMITTED (the count must survive the error) and raised:
    401, or 423 once locked."""
    from ..db import lock_users, read_session, write_session

    with read_session() as db:
        user = db.scalar(select(User).where(User.username == username))
    if user is None:
        burn_verify_time(password)
        raise BadCredentials("wrong username or password")
    if _is_locked(user.login_locked_until):
        raise _locked_error("sign-ins", user.login_locked_until)
    ok = verify_secret(user.password_hash, password)
    with write_session() as db:
        user = lock_users(db, [user.id])[user.id]  # parallel failures count one by one (PostgreSQL)
        if _is_locked(user.login_locked_until):  # locked meanwhile by parallel failures
            raise _locked_error("sign-ins", user.login_locked_until)
        if not ok:
            _record_failure(user, "failed_logins", "login_locked_until")
            db.commit()
            if _is_locked(user.login_locked_until):
                raise _locked_error("sign-ins", user.login_locked_until)
            raise BadCredentials("wrong username or password")
        if user.failed_logins:
            user.failed_logins = 0
        return open_session(db, user)


def check_pin(user: User, pin_verified: bool) -> None:
    """Apply the PIN lockout rule to a PIN already checked with `pin_matches`
    (outside the transaction). Call after lock_wallets, with the user loaded,
    in an operation run by `run_idempotent`: a failure is counted and raised
    as a KeepsWrites refusal (403, or 423 once locked), which commits the count."""
    if _is_locked(user.pin_locked_until):
        raise _locked_error("PIN entries", user.pin_locked_until)
    if pin_verified:
        if user.failed_pins:
            user.failed_pins = 0
        return
    _record_failure(user, "failed_pins", "pin_locked_until")
    if _is_locked(user.pin_locked_until):
        raise _locked_error("PIN entries", user.pin_locked_until, PinLockedNow)
    raise WrongPin("wrong PIN")


def pin_matches(user: User, pin: str) -> bool:
    """The slow argon2 check, done before the write transaction begins."""
    return verify_pin(user.pin_hash, pin)


# ---------------------------------------------------------------- sessions

def open_session(db: Session, user: User) -> tuple[str, datetime]:
    token = new_session_token()
    expires = utcnow() + timedelta(seconds=get_settings().session_ttl_seconds)
    db.add(UserSession(token_digest=token_digest(token), user_id=user.id, expires_at=expires))
    db.flush()
    return token, expires


# Built once with the digest as a parameter: SQLAlchemy memoizes a statement's
# cache key, so each call only binds the digest (building the select per call
# cost more CPU than the SQLite lookup itself). Core columns, not the ORM entities:
# loading them through a Session cost more than twice the statement's own time
# (docs/performance.md); live_user makes the User from the row.
_USER_ATTRIBUTES = tuple(sa_inspect(User).column_attrs)
SESSION_QUERY: Select = (select(UserSession.revoked_at, UserSession.expires_at,
                                *(a.columns[0] for a in _USER_ATTRIBUTES))
                         .join(User, User.id == UserSession.user_id)
                         .where(UserSession.token_digest == bindparam("token_digest")))
SESSION_COLUMNS = 2 + len(_USER_ATTRIBUTES)   # columns a caller adds to the query come after these


def session_params(token: str) -> dict[str, str]:
    """The parameters of SESSION_QUERY (add columns to the query to load more
    in the same statement, as rate_limits.signed_in_caller does)."""
    return {"token_digest": token_digest(token)}


def live_user(row: Sequence[Any]) -> User | None:
    """The user of a SESSION_QUERY row (detached, every column loaded), or None if the
    session was revoked or has expired."""
    revoked_at, expires_at = row[0], row[1]
    if revoked_at is not None or expires_at <= utcnow():
        return None
    return detached(User, zip((a.key for a in _USER_ATTRIBUTES), row[2:SESSION_COLUMNS], strict=True))


def user_for_token(conn: Connection, token: str) -> User | None:
    row = conn.execute(SESSION_QUERY, session_params(token)).first()
    return None if row is None else live_user(row)


def revoke_session(db: Session, token: str) -> None:
    db.execute(update(UserSession).where(UserSession.token_digest == token_digest(token))
               .values(revoked_at=utcnow()))


def reset_credentials(db: Session, username: str, password: str, pin: str) -> User:
    """An operator gives a user a new password and PIN (a restore whose credentials could
    not be opened, a user who forgot both): the lockouts end and every session of the user
    is revoked, so only the new password opens the account. The caller validated both
    (schemas.user.CredentialsReset)."""
    user = find_user(db, username)
    if user is None:
        raise NotFound("no such user")
    user.password_hash, user.pin_hash = hash_secret(password), hash_pin(pin)
    user.failed_logins, user.login_locked_until = 0, None
    user.failed_pins, user.pin_locked_until = 0, None
    db.execute(delete(UserSession).where(UserSession.user_id == user.id))
    db.flush()
    return user


def find_user(db: Session, username: str) -> User | None:
    return db.scalar(select(User).where(User.username == username))
