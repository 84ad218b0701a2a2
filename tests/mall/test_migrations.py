"""The MSP's schema comes from its migrations alone: an empty database (SQLite,
PostgreSQL) upgrades to head, the result is what the models say (Alembic's
autogenerate finds no difference), and the MSP refuses a vendor's database."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from server_stub import migrate as vendor_migrate
from server_stub.db import normalize_url
from server_stub.mall import migrate
from server_stub.mall.models import MallBase
from tests.support.msp import database_url
from tests.support.server import drop_pg_database


def test_one_head_and_every_revision_is_the_msps():
    assert len(migrate.heads()) == 1
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    assert all(rev.revision.startswith("m") for rev in script.walk_revisions())


def test_an_empty_database_upgrades_to_head_and_matches_the_models(backend, tmp_path):
    url, drop = database_url(backend, tmp_path)
    engine = create_engine(normalize_url(url))
    try:
        migrate.upgrade(url)
        migrate.upgrade(url)   # a second start finds nothing to do
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == migrate.heads()
            assert conn.execute(text("SELECT id, version FROM directory_state")).all() == [(1, 1)]
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), MallBase.metadata)
            tables = set(inspect(conn).get_table_names())
        assert diff == []
        assert set(MallBase.metadata.tables) <= tables
    finally:
        engine.dispose()
        if drop:
            drop_pg_database(drop)


def test_the_msp_refuses_a_vendors_database(backend, tmp_path):
    url, drop = database_url(backend, tmp_path)
    try:
        vendor_migrate.upgrade(url)
        with pytest.raises(Exception, match="Can't locate revision"):
            migrate.upgrade(url)
        engine = create_engine(normalize_url(url))
        try:
            assert "members" not in inspect(engine).get_table_names()
        finally:
            engine.dispose()
    finally:
        if drop:
            drop_pg_database(drop)
