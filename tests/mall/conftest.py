"""Fixtures for the MSP's tests (tests/support/msp.py), on SQLite and PostgreSQL
through the shared `backend` fixture (tests/conftest.py):

- `mall_db`: a fresh migrated MSP database for in-process service tests (its URL;
  server_stub.db's sessions use it); dropped after the test.
- `msp`: one real `msp serve` process per backend for the module; tests share it,
  so each creates its own members and never counts global rows.
- `msp_factory`: a dedicated MSP (extra env, extra `msp serve` arguments; `ca_file` for one
  started with --tls-cert), stopped after the test.
"""
from __future__ import annotations

import pytest

from tests.support.msp import migrated_mall_database, start_msp


@pytest.fixture
def mall_db(backend, tmp_path):
    with migrated_mall_database(backend, tmp_path / "mall") as url:
        yield url


@pytest.fixture(scope="module")
def msp(backend, tmp_path_factory):
    srv, cleanup = start_msp(backend, tmp_path_factory.mktemp(f"msp-{backend}"))
    yield srv
    cleanup()


@pytest.fixture
def msp_factory(backend, tmp_path):
    cleanups = []

    def make(env=None, extra_args=(), ca_file=None):
        srv, cleanup = start_msp(backend, tmp_path / f"msp{len(cleanups)}", env=env, extra_args=tuple(extra_args),
                                 ca_file=ca_file)
        cleanups.append(cleanup)
        return srv

    yield make
    for c in cleanups:
        c()
