"""Exactly once between servers that share no transaction (docs/mall.md,
"Exactly once across servers").

- Outbox (sender): `enqueue` writes a message in the caller's transaction,
  beside the change that needs it. An `OutboxWorker` thread claims due
  messages, delivers each OUTSIDE any transaction, and records the final
  answer together with its consequence (the kind's handler) in one write
  transaction. No final answer: tried again later with backoff, with the
  same message id (the receiver's Idempotency-Key). A crash anywhere only
  means a message is sent again; a lease (`claimed_until`) keeps two workers
  from sending one message at the same time.
- Inbox (receiver): `receive` applies a message and stores its answer in one
  transaction with a row keyed by (sender, message id); a repeat gets the
  stored answer and applies nothing.

Apps make their own tables from the two mixins (one outbox and one inbox per
app); this module imports no app's models. Order per destination is not
promised: a message that failed waits while later ones go.
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

from ..logs import log
from ..db_types import UTCDateTime, conflict_insert, utcnow
from ..services.errors import ApiError, problem_body
from .types import Answer, Unreachable

WriteSession = Callable[[], AbstractContextManager[Session]]
LEASE_SECONDS = 30.0   # how long a claim keeps other workers off a row
# (destination, method, path, body, message_id) -> the final Answer; raises Unreachable
Deliver = Callable[[str, str, str, Any, str], Answer]
# (db, the outbox row, the answer): applies the answer's consequence in the transaction that marks it delivered
Handler = Callable[[Session, Any, Answer], None]

# A 64-bit id on PostgreSQL; SQLite's INTEGER PRIMARY KEY (the rowid) already is.
_RowId = BigInteger().with_variant(Integer(), "sqlite")

# The Idempotency-Key a message travels under: printable ASCII without spaces.
MESSAGE_ID_PATTERN = re.compile(r"^[\x21-\x7e]{1,64}$")
# Messages are commands (they change something at the receiver), so never GET.
METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class OutboxStatus(StrEnum):
    PENDING = "pending"        # no final answer yet
    DELIVERED = "delivered"    # answered; answer_status/answer_body hold the final answer


class InboxRefusal(StrEnum):
    """The `code` of the inbox's own 422 answers (problem details); neither is stored."""

    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"   # the message id came before with another body
    INVALID_MESSAGE_ID = "invalid_message_id"
    INVALID_BODY = "invalid_body"                       # not JSON as we store it (NaN, Infinity)


def canonical_json(body: Any) -> str:
    """The one text of a JSON value: what is stored, sent and digested."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def body_digest(body: Any) -> str:
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


# ------------------------------------------------------------------ tables

class OutboxColumns:
    """Mix into an app's declarative model to make its outbox table:

        class Outbox(OutboxColumns, Base):
            __tablename__ = "outbox_messages"
    """

    id: Mapped[int] = mapped_column(_RowId, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)   # the Idempotency-Key
    kind: Mapped[str] = mapped_column(String(32))                      # picks the handler
    destination: Mapped[str] = mapped_column(String(64))               # a member id, or "msp"
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)                            # canonical JSON
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)          # claims, so sends begun
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    answer_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    answer_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        # the worker's claim: pending rows that are due
        return (Index(f"ix_{cls.__tablename__}_due", "status", "next_attempt_at"),)  # type: ignore[attr-defined]

    @property
    def payload(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    @property
    def answer(self) -> Answer | None:
        """The final answer, once delivered."""
        if self.answer_status is None or self.answer_body is None:
            return None
        return Answer(self.answer_status, json.loads(self.answer_body))


class InboxColumns:
    """Mix into an app's declarative model to make its inbox table:

        class Inbox(InboxColumns, Base):
            __tablename__ = "inbox_messages"
    """

    id: Mapped[int] = mapped_column(_RowId, primary_key=True)
    sender: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(String(64))
    body_digest: Mapped[str] = mapped_column(String(64))   # sha-256 hex of the canonical body
    answer_status: Mapped[int] = mapped_column(Integer)
    answer_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        name = cls.__tablename__  # type: ignore[attr-defined]
        return (UniqueConstraint("sender", "message_id", name=f"uq_{name}_sender_message_id"),)


# ------------------------------------------------------------------ sender

def _row_values(kind: str, destination: str, method: str, path: str, body: Any,
                message_id: str | None) -> dict[str, Any]:
    message_id = uuid.uuid4().hex if message_id is None else message_id
    if not MESSAGE_ID_PATTERN.match(message_id):
        raise ValueError("message_id must be 1-64 printable ASCII characters without spaces")
    if not 1 <= len(kind) <= 32:
        raise ValueError("kind must be 1-32 characters")
    if not 1 <= len(destination) <= 64:
        raise ValueError("destination must be 1-64 characters")
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}")
    if not (path.startswith("/") and len(path) <= 200):
        raise ValueError("path must start with / and be at most 200 characters")
    try:
        text = canonical_json(body)
    except (TypeError, ValueError) as e:
        raise ValueError(f"body is not JSON: {e}") from None
    now = utcnow()
    return dict(message_id=message_id, kind=kind, destination=destination, method=method, path=path, body=text,
                status=OutboxStatus.PENDING, attempts=0, next_attempt_at=now, created_at=now)


def enqueue(db: Session, model: type[OutboxColumns], *, kind: str, destination: str, method: str, path: str,
            body: Any, message_id: str | None = None) -> str:
    """Add a message in the CALLER's transaction (it goes when that commits;
    call the worker's wake() after the commit). Returns its message id, a
    uuid4 hex when none is given. Bad arguments raise ValueError, adding nothing."""
    values = _row_values(kind, destination, method, path, body, message_id)
    db.execute(insert(model).values(**values))
    return str(values["message_id"])


def enqueue_leased(db: Session, model: type[OutboxColumns], *, kind: str, destination: str, method: str,
                   path: str, body: Any, message_id: str | None = None,
                   lease_seconds: float = LEASE_SECONDS) -> Claimed:
    """enqueue, the row leased to the caller from the start (as a worker's claim would): once the
    transaction commits, the caller sends it (OutboxWorker.send_leased) without a claim of its own.
    Never sent (the process died): the lease runs out and a worker sends it."""
    values = _row_values(kind, destination, method, path, body, message_id)
    values.update(attempts=1, claimed_until=values["created_at"] + timedelta(seconds=lease_seconds))
    row_id = db.execute(insert(model).values(**values).returning(model.id)).scalar_one()
    return Claimed(int(row_id), values["message_id"], kind, destination, method, path, values["body"])


@dataclass(frozen=True)
class Claimed:
    """What a delivery needs of a row, read when it was claimed (or written leased: enqueue_leased)."""

    id: int
    message_id: str
    kind: str
    destination: str
    method: str
    path: str
    body: str


class OutboxWorker:
    """Delivers the messages of one outbox table, in a daemon thread (start)
    or a round at a time (run_once). Any number of workers, threads or
    processes, may share the table."""

    def __init__(self, model: type[OutboxColumns], write_session: WriteSession, deliver: Deliver,
                 handlers: Mapping[str, Handler], *, batch: int = 20, lease_seconds: float = LEASE_SECONDS,
                 poll_seconds: float = 0.5, max_backoff_seconds: float = 300, senders: int = 8,
                 read_session: WriteSession | None = None):
        if batch < 1 or lease_seconds <= 0 or poll_seconds <= 0 or max_backoff_seconds <= 0 or senders < 1:
            raise ValueError("batch, lease_seconds, poll_seconds, max_backoff_seconds and senders must be positive")
        self.model = model
        self.write_session = write_session
        self.read_session = read_session or write_session   # waiting for an answer takes no write lock
        self.deliver = deliver
        self.handlers = dict(handlers)
        self.batch = batch
        self.lease = timedelta(seconds=lease_seconds)
        self.poll_seconds = poll_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.senders = senders
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the thread
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"outbox-{self.model.__name__}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def wake(self) -> None:
        """Deliver now: call after the transaction that enqueued commits."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            claimed = 0
            try:
                claimed, _final = self._round()
            except Exception as e:  # the database is away for a while: the thread must outlive it
                log("outbox round failed", logging.ERROR, table=self.model.__name__, error=repr(e)[:300])
                self._stop.wait(max(self.poll_seconds, 1.0))
                continue
            # Anything claimed: go round again at once. More may be due (a full batch),
            # and the handlers of this round may have enqueued the saga's next message.
            if claimed == 0:
                self._wake.wait(self.poll_seconds)

    # -- one round
    def run_once(self) -> int:
        """Claim the due messages (at most `batch`), deliver them, record what
        came back. Returns how many got their final answer in this round."""
        return self._round()[1]

    def deliver_now(self, message_id: str, timeout: float) -> Answer | None:
        """Deliver one message at once from the calling thread (a request that
        needs the answer), and return its final answer, or None if none came
        within `timeout` seconds.

        The row is claimed as the worker claims rows (the same lease), so the
        worker never sends it at the same time. Claimed by a worker already:
        this waits for the worker's answer instead. The answer is recorded by
        the kind's handler in the same write as always (exactly once, whoever
        gets it). Sent but slower than `timeout`: the send goes on in a thread
        of its own and records the answer when it comes; without an answer
        (the receiver unreachable) the row waits its backoff for the worker."""
        deadline = time.monotonic() + max(timeout, 0.0)
        return self._send_now(self._claim_one(message_id), message_id, deadline)

    def send_leased(self, claimed: Claimed, timeout: float) -> Answer | None:
        """deliver_now for a row its caller enqueued leased (enqueue_leased) and committed."""
        return self._send_now(claimed, claimed.message_id, time.monotonic() + max(timeout, 0.0))

    def _send_now(self, claimed: Claimed | None, message_id: str, deadline: float) -> Answer | None:
        if claimed is not None:
            done = threading.Event()
            recorded: list[Answer] = []   # the answer this send recorded, once committed

            def send() -> None:
                try:
                    self._send(claimed, recorded=recorded)
                finally:
                    done.set()

            threading.Thread(target=send, name=f"outbox-now-{self.model.__name__}", daemon=True).start()
            if done.wait(max(deadline - time.monotonic(), 0.0)) and recorded:
                return recorded[0]
        return self._wait_answer(message_id, deadline)

    def _claim_one(self, message_id: str) -> Claimed | None:
        """Lease one pending row now (due or not: the caller wants it now),
        unless a live lease holds it. None: delivered, unknown, or claimed."""
        now = utcnow()
        rows = self._lease(and_(self.model.message_id == message_id, *self._unleased(now)), now)
        return rows[0] if rows else None

    def _wait_answer(self, message_id: str, deadline: float) -> Answer | None:
        """The row's final answer once recorded (by anyone), waiting until `deadline`."""
        m = self.model
        while True:
            with self.read_session() as db:
                row = db.execute(select(m.status, m.answer_status, m.answer_body)
                                 .where(m.message_id == message_id)).first()
            if row is None:
                return None
            if row.status == OutboxStatus.DELIVERED and row.answer_status is not None:
                return Answer(row.answer_status, json.loads(row.answer_body))
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(0.05, left))

    def _send(self, row: Claimed, down: dict[str, str] | None = None, recorded: list[Answer] | None = None) -> int:
        """Deliver one claimed row and record what came back (1: a final answer, also
        appended to `recorded` once committed). Unreachable: `down` (the round's) learns why."""
        try:
            answer = self.deliver(row.destination, row.method, row.path, json.loads(row.body), row.message_id)
        except Unreachable as e:
            error = self._failed(row, f"unreachable: {e}")
            if down is not None:
                down[row.destination] = error
            return 0
        except Exception as e:  # a fault in the deliver function: logged, tried again like Unreachable
            log("outbox delivery failed", logging.ERROR, kind=row.kind, message_id=row.message_id,
                destination=row.destination, error=repr(e)[:300])
            self._failed(row, f"deliver raised {e!r}")
            return 0
        final = self._record(row, answer)
        if final and recorded is not None:
            recorded.append(answer)
        return final

    def pending(self) -> int:
        m = self.model
        with self.write_session() as db:
            return db.execute(select(func.count()).select_from(m).where(m.status == OutboxStatus.PENDING)).scalar_one()

    def _round(self) -> tuple[int, int]:
        rows = self._claim()
        if not rows:
            return 0, 0
        started = time.monotonic()
        down: dict[str, str] = {}   # destination -> why it gave no answer in this round

        def send(row: Claimed) -> int:
            if time.monotonic() - started > self.lease.total_seconds() / 2:
                # its lease runs out soon: another worker may take it, so do not send it too
                self._release([row])
                return 0
            if row.destination in down:   # it just failed: its other messages wait their backoff too
                self._failed(row, f"not sent: {row.destination} unreachable in this round ({down[row.destination]})")
                return 0
            return self._send(row, down)

        # A round's messages go out side by side: one slow receiver (or a saga's long
        # chain of hops) must not hold the others back behind it.
        if self.senders == 1 or len(rows) == 1:
            final = sum(send(row) for row in rows)
        else:
            final = sum(self._senders().map(send, rows))
        return len(rows), final

    def _senders(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.senders, thread_name_prefix=f"outbox-send-{self.model.__name__}")
            return self._pool

    def _claim(self) -> list[Claimed]:
        """Lease the due rows: one statement, committed before any delivery.
        PostgreSQL skips rows another worker is claiming (FOR UPDATE SKIP
        LOCKED); SQLite's BEGIN IMMEDIATE lets one writer in at a time."""
        m = self.model
        now = utcnow()
        due = (select(m.id)
               .where(m.next_attempt_at <= now, *self._unleased(now))
               .order_by(m.id).limit(self.batch)
               .with_for_update(skip_locked=True))
        return sorted(self._lease(m.id.in_(due.scalar_subquery()), now), key=lambda r: r.id)

    def _unleased(self, now: Any) -> tuple[Any, ...]:
        """A pending row no live lease holds."""
        m = self.model
        return (m.status == OutboxStatus.PENDING, or_(m.claimed_until.is_(None), m.claimed_until < now))

    def _lease(self, which: Any, now: Any) -> list[Claimed]:
        """Lease the rows `which` selects (one statement, committed before any delivery)."""
        m = self.model
        claim = (update(m).where(which)
                 .values(claimed_until=now + self.lease, attempts=m.attempts + 1)
                 .returning(m.id, m.message_id, m.kind, m.destination, m.method, m.path, m.body)
                 .execution_options(synchronize_session=False))
        with self.write_session() as db:
            return [Claimed(*r) for r in db.execute(claim).all()]

    def _locked_pending(self, db: Session, row_id: int) -> Any:
        """The row, locked (PostgreSQL), if it still waits for an answer."""
        row = db.get(self.model, row_id, with_for_update=True, populate_existing=True)
        return row if row is not None and row.status == OutboxStatus.PENDING else None

    def _record(self, claimed: Claimed, answer: Answer) -> int:
        handler = self.handlers.get(claimed.kind)
        if handler is None:
            self._failed(claimed, f"no handler for kind {claimed.kind!r}")
            log("outbox message has no handler", logging.ERROR, kind=claimed.kind, message_id=claimed.message_id)
            return 0
        try:
            answer_body = canonical_json(answer.body)
            with self.write_session() as db:
                row = self._locked_pending(db, claimed.id)
                if row is None:   # another worker recorded it first (the same final answer)
                    return 0
                handler(db, row, answer)
                now = utcnow()
                row.status = OutboxStatus.DELIVERED
                row.answer_status = answer.status
                row.answer_body = answer_body
                row.delivered_at = now
                row.claimed_until = None
            return 1
        except Exception as e:  # the handler (or the database) failed: rolled back; the resend gets the same answer
            log("outbox answer not recorded", logging.ERROR, kind=claimed.kind, message_id=claimed.message_id,
                status=answer.status, error=repr(e)[:300])
            self._failed(claimed, f"answer not recorded: {e!r}")
            return 0

    def backoff_seconds(self, attempts: int) -> float:
        """The wait after the `attempts`-th try without a final answer: 1 s,
        doubling, at most max_backoff_seconds; drawn between half and all of it
        so that workers retrying together spread out."""
        ceiling = min(self.max_backoff_seconds, 2.0 ** min(max(attempts - 1, 0), 30))
        return ceiling * random.uniform(0.5, 1.0)

    def _failed(self, claimed: Claimed, error: str) -> str:
        """Record a try without a final answer; returns the recorded error."""
        error = error[:300]
        with self.write_session() as db:
            row = self._locked_pending(db, claimed.id)
            if row is None:
                return error
            wait = self.backoff_seconds(row.attempts)
            row.next_attempt_at = utcnow() + timedelta(seconds=wait)
            row.claimed_until = None
            row.last_error = error
            attempts = row.attempts
        log("outbox message not answered", logging.WARNING, kind=claimed.kind, message_id=claimed.message_id,
            destination=claimed.destination, attempts=attempts, retry_in_seconds=round(wait, 1), error=error)
        return error

    def _release(self, rows: list[Claimed]) -> None:
        """Give back claims not used: due again at once, the claim not counted."""
        m = self.model
        with self.write_session() as db:
            db.execute(update(m).where(m.id.in_([r.id for r in rows]), m.status == OutboxStatus.PENDING)
                       .values(claimed_until=None, attempts=m.attempts - 1)
                       .execution_options(synchronize_session=False))


# ------------------------------------------------------------------ receiver

def applied(fn: Callable[[Session], Any], status: int = 200) -> Callable[[Session], Answer]:
    """A service call as `receive`'s apply: its result is the answer (`status`),
    and a refusal it raises (ApiError) is an answer too, stored and final."""
    def apply(db: Session) -> Answer:
        try:
            return Answer(status, fn(db))
        except ApiError as e:
            return Answer(e.status_code, e.body())
    return apply


def _refused(refusal: InboxRefusal, detail: str) -> Answer:
    return Answer(422, problem_body(422, detail, "invalid-request", code=refusal))


def receive(write_session: WriteSession, model: type[InboxColumns], *, sender: str, message_id: str, body: Any,
            apply: Callable[[Session], Answer], before: Callable[[Session], None] | None = None) -> Answer:
    """The answer to message `message_id` from `sender`, applied at most once.
    `before` runs first in the same transaction, outside the savepoint: what stays
    done even when apply refuses (the hold that expired voided, and the 409 says so).

    The first time, apply(db) runs and its answer is stored in ONE transaction
    with the inbox row. A refusal apply decided (an Answer >= 400) is stored
    and final too, and its writes are rolled back (a savepoint). apply raising
    stores nothing: the sender's retry runs it again. A repeat with the same
    body gets the stored answer without running apply; with another body, 422
    `idempotency_key_reused`. Of two concurrent firsts one applies; the other
    waits on the unique (sender, message_id) and replays its answer."""
    if not MESSAGE_ID_PATTERN.match(message_id) or not 1 <= len(sender) <= 64:
        return _refused(InboxRefusal.INVALID_MESSAGE_ID,
                        "the message id must be 1-64 printable ASCII characters without spaces")
    try:
        digest = body_digest(body)
    except (TypeError, ValueError):
        return _refused(InboxRefusal.INVALID_BODY, "the body is not plain JSON")
    m = model
    for _attempt in range(3):
        inserted = False
        try:
            with write_session() as db:
                # The row first: a concurrent first waits here until we commit, then
                # inserts nothing and replays our answer; apply runs once.
                row_id = db.execute(conflict_insert(db, m).values(
                    sender=sender, message_id=message_id, body_digest=digest, answer_status=0, answer_body="",
                    created_at=utcnow()).on_conflict_do_nothing(index_elements=["sender", "message_id"])
                    .returning(m.id)).scalar()
                if row_id is None:
                    stored = db.execute(select(m.body_digest, m.answer_status, m.answer_body)
                                        .where(m.sender == sender, m.message_id == message_id)).first()
                    if stored is None:   # the first was rolled back after all: try again
                        continue
                    if stored.body_digest != digest:
                        return _refused(InboxRefusal.IDEMPOTENCY_KEY_REUSED,
                                        f"message {message_id} was already received with another body")
                    return Answer(stored.answer_status, json.loads(stored.answer_body))
                inserted = True
                if before is not None:
                    before(db)
                savepoint = db.begin_nested()
                answer = apply(db)
                if answer.status >= 400:
                    savepoint.rollback()   # a refusal changes nothing
                else:
                    savepoint.commit()
                db.execute(update(m).where(m.id == row_id).values(
                    answer_status=answer.status, answer_body=canonical_json(answer.body)))
                return answer
        except IntegrityError:
            if inserted:   # apply's own constraint, not a concurrent first
                raise
    raise RuntimeError(f"inbox: message {message_id} from {sender} could not be stored or read")
