"""Typed dependencies for routes:

- DbSession: a read transaction (no writes; see db.py).
- WriteDb: a write transaction, committed when the route returns normally,
  rolled back on any error.
- CurrentUser / AdminUser: the bearer token's user (401 / 403).
- IdempotencyKey: the optional Idempotency-Key header; declare it as
  `idempotency_key: IdempotencyKey = None` and pass it to
  services.idempotency.run_idempotent).
"""
from __future__ import annotations

from typing import Annotated, Iterator

from fastapi import Depends, Header, Path
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from ..db import new_session
from ..models.user import User
from ..schemas.common import MAX_ID
from ..services.accounts import user_for_token
from ..services.errors import ApiError, Forbidden


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


def bearer_token(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise Unauthorized("missing bearer token")
    if len(creds.credentials) > 200:
        raise Unauthorized("invalid or expired session")
    return creds.credentials


BearerToken = Annotated[str, Depends(bearer_token)]


def current_user(token: BearerToken) -> User:
    db = new_session(write=False)
    try:
        user = user_for_token(db, token)
        if user is not None:
            db.expunge(user)  # keep its loaded fields after the session ends
    finally:
        db.rollback()
        db.close()
    if user is None:
        raise Unauthorized("invalid or expired session")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def admin_user(user: CurrentUser) -> User:
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
