"""Idempotency-Key: the first answer to a key is final, refusals included.

The same key with the same request returns the first answer (status and
body) and moves nothing again; the same key with another request is 422.

`run_idempotent` runs an operation in its own write transaction:
- success: the Outcome is stored in the SAME transaction as the effects, so
  an answer is recorded exactly when its effects are (no extra statement);
- a final refusal (an ApiError the operation raised, see `is_final`): its
  writes are rolled back, then the refusal (`exc.body()`, `exc.status_code`)
  is stored for the key in a new write transaction, unless a concurrent
  request with the key committed first (then its answer is replayed);
- a refusal that `KeepsWrites` (a wrong PIN counts toward the lockout): its
  writes are committed together with the stored refusal, or alone when it is
  not final or there is no key;
- anything else (422, 423, a crash) stores nothing: a retry runs again.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from fastapi.encoders import jsonable_encoder
from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db import lock_users, write_session
from ..models.base import utcnow
from ..models.idempotency import IdempotencyRecord
from ..models.user import User
from .errors import ApiError, Invalid

# Core statements on the session's connection: these run inside every
# token-moving transaction, where the ORM's per-object bookkeeping costs more
# than the SQL itself.
_records = IdempotencyRecord.__table__
_users = User.__table__

KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")

# Refusals that say the request was not run, so a retry with the key runs it:
# 401 no session, 422 malformed or semantically invalid input (the same body
# gets the same 422 anyway), 423 locked (sign-in, PIN or card lockout: a state
# of the account checked before the operation decides anything), 429 rate limit.
NOT_STORED_STATUSES = frozenset({401, 422, 423, 429})


def is_final(status_code: int) -> bool:
    """A refusal the operation decided (402, 403, 404, 409, ...): stored with its key."""
    return 400 <= status_code < 500 and status_code not in NOT_STORED_STATUSES


class KeepsWrites:
    """Mix into an ApiError whose writes must survive the refusal (a wrong PIN
    or a declined card counts toward a lockout): `run_idempotent` commits them,
    with the stored refusal when it is final. Raise it only from an operation
    run by `run_idempotent`; anywhere else the transaction just rolls back."""


@dataclass
class Outcome:
    status_code: int
    body: dict[str, Any]


def fingerprint(scope: str, payload: Any) -> str:
    canonical = json.dumps(jsonable_encoder(payload), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{scope}\n{canonical}".encode()).hexdigest()


def validate_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not KEY_PATTERN.match(key):
        raise Invalid("Idempotency-Key must be 1-200 printable ASCII characters without spaces")
    return key


_REPLAY = (select(_records.c.fingerprint, _records.c.status_code, _records.c.response_json)
           .where(_records.c.user_id == bindparam("user_id"), _records.c.key == bindparam("key")))
_STORE = insert(_records)


def _replay(db: Session, user_id: int, key: str, fp: str) -> Outcome | None:
    rec = db.connection().execute(_REPLAY, {"user_id": user_id, "key": key}).first()
    if rec is None:
        return None
    if rec.fingerprint != fp:
        raise Invalid("Idempotency-Key was already used with a different request")
    return Outcome(rec.status_code, json.loads(rec.response_json))


def _store(db: Session, user_id: int, key: str, fp: str, outcome: Outcome) -> None:
    # unique (user_id, key): on PostgreSQL a concurrent request that stored
    # first makes this raise IntegrityError (see run_idempotent)
    db.connection().execute(_STORE, {
        "user_id": user_id, "key": key, "fingerprint": fp, "status_code": outcome.status_code,
        "response_json": json.dumps(outcome.body), "created_at": utcnow()})


def _lock_key_owner(db: Session, user_id: int) -> None:
    """PostgreSQL: take the lock the record's foreign key takes (FOR KEY SHARE on
    its user) BEFORE inserting the record. A concurrent request with the key
    that holds the user's wallet lock (FOR UPDATE) then finishes first, and we
    replay its answer; inserting first would let the two wait on each other
    (our insert's key check on that user, its insert on our uncommitted key)."""
    if db.get_bind().dialect.name != "sqlite":
        db.connection().execute(select(_users.c.id).where(_users.c.id == user_id)
                                .with_for_update(key_share=True))


def _refusal_answer(db: Session, user_id: int, key: str | None, fp: str, refusal: ApiError) -> Outcome:
    """The answer to a request whose operation raised `refusal`; raises it
    again when nothing is stored. Runs on the failure path only."""
    if not isinstance(refusal, KeepsWrites):
        db.rollback()   # the operation's writes go; what follows is a new write transaction
    if key is not None:
        _lock_key_owner(db, user_id)
        earlier = _replay(db, user_id, key, fp)
        if earlier is not None:
            # a concurrent request with this key answered first: its answer is
            # the answer, and our writes (a counted PIN failure) never happened
            db.rollback()
            return earlier
        if is_final(refusal.status_code):
            outcome = Outcome(refusal.status_code, jsonable_encoder(refusal.body()))
            _store(db, user_id, key, fp, outcome)
            return outcome
    db.commit()   # the writes of a KeepsWrites refusal; nothing otherwise
    raise refusal


def run_idempotent(user_id: int, key: str | None, scope: str, payload: Any,
                   operation: Callable[[Session], Outcome], *, lock_user: bool = False) -> Outcome:
    """`lock_user`: take the user's row lock (PostgreSQL) BEFORE reading the key, for an
    operation with an effect outside the database (a card charge): a concurrent request with
    the key then waits for the first to commit and replays it, instead of running (charging)
    again and only then failing on the key."""
    key = validate_key(key)
    fp = fingerprint(scope, payload)
    for _attempt in range(3):
        try:
            with write_session() as db:
                if key is not None:
                    if lock_user:
                        lock_users(db, [user_id])
                    earlier = _replay(db, user_id, key, fp)
                    if earlier is not None:
                        return earlier
                try:
                    outcome = operation(db)
                except ApiError as refusal:
                    return _refusal_answer(db, user_id, key, fp, refusal)
                outcome.body = jsonable_encoder(outcome.body)
                if key is not None:
                    _store(db, user_id, key, fp, outcome)
                return outcome
        except IntegrityError:
            # PostgreSQL: a concurrent request with the same key committed
            # first; ours rolled back. Go round again and replay its answer.
            if key is None:
                raise
    raise RuntimeError("idempotency retry limit reached")
