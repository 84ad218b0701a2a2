"""What both Alembic environments do (the vendor's, server_stub/migrations, and
the MSP's, server_stub/mall/migrations): online migrations only, on the URL the
Config carries (set by server_stub.migrate / server_stub.mall.migrate, never an
ini file)."""
from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData, create_engine, pool

from .db import is_sqlite, normalize_url


def run_migrations(target_metadata: MetaData) -> None:
    if context.is_offline_mode():
        raise SystemExit("offline migrations are not supported")
    url = normalize_url(context.config.get_main_option("sqlalchemy.url") or "")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=is_sqlite(url),  # SQLite needs table rebuilds for ALTERs
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
