"""Alembic environment of the MSP's database. The URL comes from the Config
(set by server_stub.mall.migrate), never from an ini file."""
from alembic import context
from sqlalchemy import create_engine, pool

from server_stub.db import is_sqlite, normalize_url
from server_stub.mall.models import MallBase

config = context.config
target_metadata = MallBase.metadata


def run_migrations_online() -> None:
    url = normalize_url(config.get_main_option("sqlalchemy.url") or "")
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


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported")
run_migrations_online()
