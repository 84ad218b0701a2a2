"""Engine and sessions.

Two kinds of session:
- `read_session()`: plain transactions (SQLite: deferred; WAL lets reads run
  beside the writer).
- `write_session()`: every transaction that may write. On SQLite it starts
  with BEGIN IMMEDIATE, so two writers never both read-then-write the same
  rows (the second waits on busy_timeout). On PostgreSQL the services lock the
  involved rows with SELECT ... FOR UPDATE in ascending id order
  (`lock_users`), which gives the same guarantee without deadlocks.
"""
from __future__ import annotations

import functools
import threading
import time
from contextlib import contextmanager
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Select, bindparam, create_engine, event, exc, or_, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker
from sqlalchemy.orm.base import instance_state

from .core.config import get_settings

_WRITE_OPTION = "tokenrent_write"
_AUTOCOMMIT_OPTION = "tokenrent_autocommit"
_engines: dict[str, Engine] = {}
_lock = threading.Lock()
M = TypeVar("M")   # a mapped class (detached)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


@functools.lru_cache(maxsize=64)   # parsing a URL costs more than the lookup it serves (loop_reads)
def normalize_url(url: str) -> str:
    """Accept postgresql:// and postgres:// and use the psycopg 3 driver."""
    u = make_url(url)
    if u.get_backend_name() == "postgresql" and u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def _build_engine(url: str) -> Engine:
    if is_sqlite(url):
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=20,
            max_overflow=20,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            # Let SQLAlchemy (not pysqlite) decide when transactions begin.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoint; WAL keeps commits atomic
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        # Writers of this process queue on a Python lock before BEGIN IMMEDIATE:
        # SQLite's own busy handler polls with growing sleeps (p99 in seconds
        # under load); the lock hands over at once. Other processes (--workers N)
        # still meet at SQLite's lock, which stays the real guarantee.
        writer_lock = threading.Lock()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            if conn.get_execution_options().get(_WRITE_OPTION):
                writer_lock.acquire()
                conn.info["tokenrent_writer"] = True
                try:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                except BaseException:
                    conn.info.pop("tokenrent_writer", None)
                    writer_lock.release()
                    raise
            elif not conn.get_execution_options().get(_AUTOCOMMIT_OPTION):
                conn.exec_driver_sql("BEGIN")

        # SQLAlchemy's commit/rollback events fire BEFORE the DBAPI call. Ending
        # the transaction here first, then handing the lock over, means the next
        # writer's BEGIN IMMEDIATE finds SQLite free instead of meeting a
        # commit still in progress (SQLITE_BUSY: its busy handler sleeps >= 1 ms).
        # SQLAlchemy's own commit()/rollback() that follows is then a no-op.
        def _end_then_release(end):
            def listener(conn):
                if conn.info.pop("tokenrent_writer", False):
                    try:
                        end(conn.connection.dbapi_connection)
                    finally:
                        writer_lock.release()
            return listener

        event.listen(engine, "commit", _end_then_release(lambda dbapi_conn: dbapi_conn.commit()))
        event.listen(engine, "rollback", _end_then_release(lambda dbapi_conn: dbapi_conn.rollback()))

        return engine
    engine = create_engine(url, pool_size=20, max_overflow=20)
    _ping_when_idle(engine)
    return engine


# A pooled connection unused this long is pinged before it is handed out (pool_pre_ping pings
# on every checkout: one more round trip per transaction on the money path).
IDLE_PING_SECONDS = 5.0


def _ping_when_idle(engine: Engine) -> None:
    """Pessimistic disconnect handling for connections that sat in the pool: one the database
    closed meanwhile (a restart, an idle timeout) is replaced before anyone uses it. Under load
    a connection comes back within milliseconds and goes out again unpinged; a connection that
    breaks in use is an error SQLAlchemy recognizes and answers by emptying the pool."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_conn, record) -> None:
        record.info["tokenrent_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn, record, _proxy) -> None:
        since = record.info.get("tokenrent_idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return   # a new connection, or one in steady use
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as e:
            raise exc.DisconnectionError(f"pooled connection is dead: {e}") from e   # the pool retries


def get_engine(url: str | None = None) -> Engine:
    url = normalize_url(url or get_settings().resolved_db_url)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _build_engine(url)
        return engine


def dispose_engines() -> None:
    with _lock:
        for e in _engines.values():
            e.dispose()
        _engines.clear()
        _makers.clear()
        _single_engines.clear()
    for forget in _on_dispose:
        forget()


_on_dispose: list[Callable[[], None]] = []   # what modules built on this one hold (loop_reads)


def on_dispose(forget: Callable[[], None]) -> None:
    """`forget()` is called by every dispose_engines() (a forked worker opens its own)."""
    _on_dispose.append(forget)


# One sessionmaker per (kind, database): each sessionmaker is a new Session
# subclass, and SQLAlchemy sets up its event dispatch per class - made per
# request, that cost every request a fraction of a millisecond.
_makers: dict[tuple[str, str], sessionmaker[Session]] = {}


def _bind(engine: Engine, kind: str) -> Engine:
    if kind == "write":
        return engine.execution_options(**{_WRITE_OPTION: True})
    if kind == "single":
        if engine.dialect.name == "sqlite":   # the connection has no implicit transactions: no BEGIN
            return engine.execution_options(**{_AUTOCOMMIT_OPTION: True})
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine


def _factory(kind: str, url: str | None) -> sessionmaker[Session]:
    key = (kind, url or get_settings().resolved_db_url)
    maker = _makers.get(key)
    if maker is None:
        maker = _makers[key] = sessionmaker(bind=_bind(get_engine(url), kind), expire_on_commit=False,
                                            autoflush=True)
    return maker


def new_session(write: bool, url: str | None = None) -> Session:
    """Transactions begin lazily at the first statement: do slow work (argon2)
    BEFORE the first query of a write session, never inside it."""
    return _factory("write" if write else "read", url)()


@contextmanager
def single_statement(url: str | None = None) -> Iterator[Connection]:
    """A connection for ONE read statement (the bearer token's lookup), Core only: no
    transaction around it (autocommit), so it costs one round trip instead of BEGIN, SELECT,
    ROLLBACK, and no Session. A statement is consistent on its own; two statements here may see
    two different moments."""
    with single_statement_engine(url).connect() as conn:
        yield conn


def single_statement_engine(url: str | None = None) -> Engine:
    """The engine single_statement's connections come from (autocommit)."""
    key = url or get_settings().resolved_db_url
    engine = _single_engines.get(key)
    if engine is None:
        engine = _single_engines.setdefault(key, _bind(get_engine(url), "single"))
    return engine


_single_engines: dict[str, Engine] = {}   # by database URL, as _makers


def detached(model: type[M], values: Iterable[tuple[str, Any]]) -> M:
    """An ORM object as the ORM loads one (no __init__, no change events: the values are its
    loaded state), then detached: what a Session's load and expunge give, without a Session.
    The caller supplies every column it will read; a missing one raises on access."""
    obj = sa_inspect(model).class_manager.new_instance()
    instance_state(obj).dict.update(values)
    make_transient_to_detached(obj)
    return obj


@contextmanager
def write_session(url: str | None = None) -> Iterator[Session]:
    """A write transaction that commits on success and rolls back on error."""
    session = new_session(True, url)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def read_session(url: str | None = None) -> Iterator[Session]:
    session = new_session(False, url)
    try:
        yield session
    finally:
        session.close()  # ends the transaction; loaded objects stay readable


_ON_COMMIT = "tokenrent_on_commit"
_CACHES = "tokenrent_session_caches"


def database_key(db: Session) -> str:
    """The session's database, as a key for what a process keeps per database."""
    return db.get_bind().engine.url.render_as_string(hide_password=True)


def session_cache(db: Session, name: str) -> dict:
    """A dict kept with the session for what its transaction has read, made or locked (so it is
    not read again); the commit empties it, and so does any rollback, a savepoint's too (what it
    made may exist no more)."""
    caches: dict[str, dict] = db.info.setdefault(_CACHES, {})
    return caches.setdefault(name, {})


def on_commit(db: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's transaction has committed (as Django's
    transaction.on_commit). A rollback, a savepoint's too, drops every callback
    registered so far: use it only to publish what a later read would find anyway
    (a cache), never for work that must happen."""
    db.info.setdefault(_ON_COMMIT, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_on_commit(session: Session) -> None:
    session.info.pop(_CACHES, None)   # per transaction: the next one reads again (and its locks are gone)
    for callback in session.info.pop(_ON_COMMIT, ()):
        callback()


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_rollback(session: Session, _previous: object) -> None:
    session.info.pop(_ON_COMMIT, None)
    session.info.pop(_CACHES, None)


_LOCKED_USERS = "locked_users"


def lock_users(db: Session, user_ids, usernames: Iterable[str] = ()) -> dict:
    """Lock user rows (and so their wallets) in ascending id order and return them by id (User),
    read under the lock, so their counters and status are the latest. One statement for all of
    them (PostgreSQL: FOR UPDATE, the rows locked in the order they are sorted; on SQLite BEGIN
    IMMEDIATE already serializes writers and FOR UPDATE is not rendered); a user this
    transaction has locked already costs nothing. `usernames` are locked in the same statement
    (a transfer's recipient: no lookup of its id first); an unknown one is left out."""
    locked: dict = session_cache(db, _LOCKED_USERS)
    ids = sorted(set(i for i in user_ids if i is not None))
    names = set(usernames)
    held = {u.username: u.id for u in locked.values() if u.username in names}
    missing, unseen = [i for i in ids if i not in locked], sorted(names - held.keys())
    if missing or unseen:
        for user in db.scalars(_lock_statement(), {"ids": missing, "names": unseen}):
            locked[user.id] = user
            if user.username in names:
                held[user.username] = user.id
    return {i: locked[i] for i in sorted(set(ids) | set(held.values())) if i in locked}


@functools.cache
def _lock_statement() -> Select:
    """Built once (a call binds the ids and names only); models import this module, so not at import."""
    from .models.user import User

    return (select(User).where(or_(User.id.in_(bindparam("ids", expanding=True)),
                                   User.username.in_(bindparam("names", expanding=True))))
            .order_by(User.id).with_for_update().execution_options(populate_existing=True))
