"""The schema comes only from Alembic migrations: a fresh database migrated to
head must hold exactly what the models declare (tables, columns, types,
indexes, constraints), on SQLite and PostgreSQL."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from server_stub import migrate
from server_stub.models import Base
from tests.support.server import migrated_database


def test_migrations_build_exactly_the_models(backend, tmp_path):
    with migrated_database(backend, tmp_path) as url:
        engine = create_engine(migrate.normalize_url(url))
        try:
            with engine.connect() as conn:
                ctx = MigrationContext.configure(conn, opts={"compare_type": True})
                diff = compare_metadata(ctx, Base.metadata)
        finally:
            engine.dispose()
    assert diff == [], "models and migrations differ (write a migration):\n" + "\n".join(map(str, diff))


def test_one_head():
    assert len(migrate.heads()) == 1, migrate.heads()
