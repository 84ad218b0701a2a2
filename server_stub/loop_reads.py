"""One-statement reads on the event loop, without a worker thread.

A hop to a worker thread and back is the dearest part of a cheap authenticated request under
load: the loop and the workers take the GIL from one another and wake each other through the
kernel (docs/performance.md, issue 13's third round: the trivial GET 1.05-1.24 -> 0.51-0.56 ms
of server CPU per request on PostgreSQL with its lookup here). The bearer token's lookup is a read that never waits
on a lock (PostgreSQL's MVCC; SQLite's WAL lets a reader run beside the writer), so it can run
on the loop itself:

- PostgreSQL: psycopg's AsyncConnection, a few per process, each used by one request at a
  time; the loop does other work while the server answers.
- SQLite: one connection of the process's loop, used synchronously: a read of a few pages from
  the page cache is CPU work, as short as the hop it saves, with nothing to wait for.

The statement is compiled once per database with SQLAlchemy's dialect, and every column's
result processor is applied, so a row reads as `Connection.execute(...).first()` would give it
(UTC datetimes, enums). A read is idempotent: a connection that turns out dead (the database
restarted) is dropped and the read tried once more on a new one.
"""
from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from sqlalchemy import Connection, Select

from .db import get_engine, is_sqlite, normalize_url, on_dispose, single_statement_engine
from .core.config import get_settings

Row = tuple[Any, ...]
MAX_POSTGRES_CONNECTIONS = 4   # per process: a lookup holds one for a round trip
APPLICATION_NAME = "tokenrent-loop-reads"   # how an operator tells these apart in pg_stat_activity


class _Compiled:
    """A SELECT as the driver runs it: its SQL text and a processor per column."""

    def __init__(self, stmt: Select, dialect: Any):
        compiled = stmt.compile(dialect=dialect)
        self.sql = str(compiled)
        self.processors: list[Callable[[Any], Any] | None] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in stmt.selected_columns]

    def row(self, raw: tuple[Any, ...]) -> Row:
        return tuple(value if proc is None else proc(value) for proc, value in zip(self.processors, raw, strict=True))


class _PostgresReader:
    def __init__(self, url: str):
        engine = get_engine(url)
        self._dialect = engine.dialect
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._compiled: dict[int, tuple[Select, _Compiled]] = {}   # by the statement's id
        self._idle: list[psycopg.AsyncConnection] = []
        self._open = 0
        self._returned = asyncio.Condition()

    async def _take(self) -> psycopg.AsyncConnection:
        async with self._returned:
            while not self._idle and self._open >= MAX_POSTGRES_CONNECTIONS:
                await self._returned.wait()
            if self._idle:
                return self._idle.pop()
            self._open += 1
        try:
            return await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True,
                                                         application_name=APPLICATION_NAME)
        except BaseException:
            await self._give_back(None)
            raise

    async def _give_back(self, conn: psycopg.AsyncConnection | None) -> None:
        async with self._returned:
            if conn is None:
                self._open -= 1
            else:
                self._idle.append(conn)
            self._returned.notify()

    async def _drop_idle(self) -> None:
        async with self._returned:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._returned.notify(len(idle))
        for conn in idle:
            await conn.close()

    async def first(self, stmt: Select, params: Mapping[str, Any]) -> Row | None:
        entry = self._compiled.get(id(stmt))
        if entry is None or entry[0] is not stmt:
            entry = self._compiled[id(stmt)] = (stmt, _Compiled(stmt, self._dialect))
        compiled = entry[1]
        for attempt in (1, 2):
            conn = await self._take()
            try:
                cur = await conn.execute(compiled.sql, params)
                raw = await cur.fetchone()
            except psycopg.OperationalError:
                # The connection is dead, and so, most likely, are the idle ones (a restart):
                # all are dropped, and the read is tried once more on a new connection.
                await conn.close()
                await self._give_back(None)
                await self._drop_idle()
                if attempt == 2:
                    raise
                continue
            except BaseException:   # a cancelled request: the connection's state is unknown
                await conn.close()
                await self._give_back(None)
                raise
            await self._give_back(conn)
            return None if raw is None else compiled.row(raw)
        raise AssertionError("unreachable")


class _SqliteReader:
    def __init__(self, url: str):
        self._engine = single_statement_engine(url)
        self._conn: Connection | None = None

    async def first(self, stmt: Select, params: Mapping[str, Any]) -> Row | None:
        if self._conn is None:
            self._conn = self._engine.connect()
        try:
            row = self._conn.execute(stmt, params).first()
        except Exception:
            self._conn.close()   # a fresh connection next time
            self._conn = None
            raise
        return None if row is None else tuple(row)


# by loop (a connection belongs to the loop it was opened on), then by database URL
_readers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _PostgresReader | _SqliteReader]] = \
    weakref.WeakKeyDictionary()


async def first_row(stmt: Select, params: Mapping[str, Any], url: str | None = None) -> Row | None:
    """The first row of `stmt`, read on the running loop (see the module's docstring). Only
    for a read that takes no lock and whose statement object lives for the process (it is
    compiled once, by identity)."""
    url = normalize_url(url or get_settings().resolved_db_url)
    readers = _readers.setdefault(asyncio.get_running_loop(), {})
    reader = readers.get(url)
    if reader is None:
        reader = readers[url] = _SqliteReader(url) if is_sqlite(url) else _PostgresReader(url)
    return await reader.first(stmt, params)


def forget_readers() -> None:
    """Drop every reader (db.dispose_engines calls it: a forked worker opens its own)."""
    _readers.clear()


on_dispose(forget_readers)
