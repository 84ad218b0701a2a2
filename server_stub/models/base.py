"""Declarative base, UTC timestamps, naming conventions for migrations
(the column types live in server_stub/db_types.py)."""
from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from ..db_types import NAMING, Amount, UTCDateTime, utcnow  # noqa: F401  (their historic home)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
