"""Accounts: registration, activation, sign-in, sessions, lockouts, PINs."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..core.config import get_settings
from ..core.security import (
    burn_verify_time, hash_pin, hash_secret, new_session_token, token_digest, verify_pin, verify_secret,
)
from ..models.base import utcnow
from ..models.ledger import KIND_INCENTIVE
from ..models.user import ROLE_ADMIN, ROLE_USER, STATUS_ACTIVE, STATUS_INACTIVE, User, UserSession
from ..models.wallet import TokenPolicy
from .errors import ApiError, Conflict, Locked


def policy(db: Session) -> TokenPolicy:
    p = db.get(TokenPolicy, 1)
    if p is None:
        raise RuntimeError("token policy row missing: run the migrations")
    return p


def create_user(db: Session, *, username: str, password: str, pin: str, full_name: str,
                email: str, address: str | None = None, phone: str | None = None,
                role: str = ROLE_USER) -> User:
    password_hash, pin_hash = hash_secret(password), hash_pin(pin)  # before the transaction begins
    if db.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict("username is taken")
    user = User(username=username, password_hash=password_hash, pin_hash=pin_hash,
                full_name=full_name, email=email, address=address, phone=phone, role=role,
                status=STATUS_ACTIVE if role == ROLE_ADMIN else STATUS_INACTIVE,
                preferred=False, negative_limit=0, failed_logins=0, failed_pins=0, card_declines=0)
    db.add(user)
    try:
        db.flush()
    except IntegrityError:
        raise Conflict("username is taken") from None
    grant = policy(db).registration_grant_tokens
    if grant > 0 and role == ROLE_USER:
        from . import ledger
        ledger.lock_wallets(db, user.id)
        ledger.credit_tokens(db, user, grant, ledger.PROMOTIONS, "grant",
                             "free registration tokens", token_kind=KIND_INCENTIVE)
        user.status = STATUS_ACTIVE  # FIG 3: the vendor's free tokens stand in for the minimum purchase
        db.flush()
    return user


def activate_if_funded(db: Session, user: User) -> None:
    """FIG 3: an account becomes active once it holds the vendor's minimum (MT)."""
    if user.status == STATUS_ACTIVE:
        return
    from .ledger import available_tokens
    if available_tokens(db, user) >= policy(db).min_tokens:
        user.status = STATUS_ACTIVE
        db.flush()


def require_active(user: User) -> None:
    if user.status != STATUS_ACTIVE:
        raise AccountInactive("account is inactive: buy the minimum number of tokens first",
                              account_status="inactive")


# ---------------------------------------------------------------- lockouts

def _is_locked(until: datetime | None) -> bool:
    return until is not None and until > utcnow()


def _locked_error(what: str, until: datetime) -> Locked:
    return Locked(f"too many failed {what}: locked until {until.isoformat()}",
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


class WrongPin(ApiError):
    status_code = 403
    problem = "wrong-pin"


class AccountInactive(ApiError):
    status_code = 403
    problem = "account-inactive"


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
        lock_users(db, [user.id])  # parallel failures count one by one (PostgreSQL)
        user = db.get(User, user.id)
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


def check_pin(db: Session, user: User, pin_verified: bool) -> None:
    """Apply the PIN lockout rule to a PIN already checked with `pin_matches`
    (outside the transaction). A failure is COMMITTED and raised (403, or 423
    once locked). Call after lock_wallets, with the user loaded in `db`."""
    if _is_locked(user.pin_locked_until):
        raise _locked_error("PIN entries", user.pin_locked_until)
    if pin_verified:
        if user.failed_pins:
            user.failed_pins = 0
        return
    _record_failure(user, "failed_pins", "pin_locked_until")
    db.commit()
    if _is_locked(user.pin_locked_until):
        raise _locked_error("PIN entries", user.pin_locked_until)
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


def user_for_token(db: Session, token: str) -> User | None:
    row = db.execute(
        select(UserSession, User).join(User, User.id == UserSession.user_id)
        .where(UserSession.token_digest == token_digest(token))
    ).first()
    if row is None:
        return None
    sess, user = row
    if sess.revoked_at is not None or sess.expires_at <= utcnow():
        return None
    return user


def revoke_session(db: Session, token: str) -> None:
    db.execute(update(UserSession).where(UserSession.token_digest == token_digest(token))
               .values(revoked_at=utcnow()))


def find_user(db: Session, username: str) -> User | None:
    return db.scalar(select(User).where(User.username == username))
