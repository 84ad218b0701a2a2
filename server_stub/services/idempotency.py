"""Idempotency-Key: the same key with the same request returns the first
answer and moves nothing again; the same key with another request is 422.

`run_idempotent` runs an operation in its own write transaction and stores
its Outcome in the SAME transaction, so an answer is recorded exactly when
its effects are. Errors raised as ApiError roll everything back and are not
stored (nothing happened, a retry may succeed). Outcomes that must persist
even though they are refusals (a declined card counts toward the lockout)
are returned as an Outcome with a 4xx status, so they are stored too.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from fastapi.encoders import jsonable_encoder
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..db import read_session, write_session
from ..models.base import utcnow
from ..models.idempotency import IdempotencyRecord
from .errors import Invalid

# Core statements on the session's connection: these run inside every
# token-moving transaction, where the ORM's per-object bookkeeping costs more
# than the SQL itself.
_records = IdempotencyRecord.__table__

KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")


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


def _stored(db: Session, user_id: int, key: str):
    return db.connection().execute(
        select(_records.c.fingerprint, _records.c.status_code, _records.c.response_json)
        .where(_records.c.user_id == user_id, _records.c.key == key)).first()


def _replay(db: Session, user_id: int, key: str, fp: str) -> Outcome | None:
    rec = _stored(db, user_id, key)
    if rec is None:
        return None
    if rec.fingerprint != fp:
        raise Invalid("Idempotency-Key was already used with a different request")
    return Outcome(rec.status_code, json.loads(rec.response_json))


def committed_answer(user_id: int, key: str | None, scope: str, payload: Any) -> Outcome | None:
    """The stored answer for this key and request, if one is committed
    (read without the write lock; a different request is not an answer)."""
    if key is None:
        return None
    with read_session() as db:
        rec = _stored(db, user_id, key)
    if rec is None or rec.fingerprint != fingerprint(scope, payload):
        return None
    return Outcome(rec.status_code, json.loads(rec.response_json))


def run_idempotent(user_id: int, key: str | None, scope: str, payload: Any,
                   operation: Callable[[Session], Outcome]) -> Outcome:
    key = validate_key(key)
    fp = fingerprint(scope, payload)
    for _attempt in range(3):
        try:
            with write_session() as db:
                if key is not None:
                    earlier = _replay(db, user_id, key, fp)
                    if earlier is not None:
                        return earlier
                outcome = operation(db)
                outcome.body = jsonable_encoder(outcome.body)
                if key is not None:
                    db.connection().execute(insert(_records).values(
                        user_id=user_id, key=key, fingerprint=fp, status_code=outcome.status_code,
                        response_json=json.dumps(outcome.body), created_at=utcnow()))
                return outcome
        except IntegrityError:
            # PostgreSQL: a concurrent request with the same key committed
            # first; ours rolled back. Go round again and replay its answer.
            if key is None:
                raise
    raise RuntimeError("idempotency retry limit reached")
