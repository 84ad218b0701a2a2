"""Column types and the clock every table uses: UTC timestamps, 64-bit amounts,
the naming convention of constraints. Outside the models package, so that
modules the models import (the outbox mixins, logs) can use them too."""
from __future__ import annotations

from datetime import datetime, UTC

from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Tokens and cents: 64-bit on every database, so no sum a user can reach
# overflows (SQLite's INTEGER already is 64-bit; the variant keeps its name).
Amount = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def conflict_insert(db: Session, table: Any) -> Any:
    """INSERT for the session's database with `.on_conflict_do_nothing()` / `_do_update()`
    (PostgreSQL's and SQLite's dialects each have their own)."""
    return (postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)


class UTCDateTime(TypeDecorator):
    """Always aware UTC datetimes, also on SQLite (which stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
