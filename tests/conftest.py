"""Shared test set-up. Part-specific fixtures live in tests/<part>/conftest.py
and in tests/support/ (real server and agent processes, no mocks).

Server fixtures (tests/support/server.py):
- `server`: one real server per database backend for the whole session,
  parametrized over SQLite and PostgreSQL (PostgreSQL tests are skipped with
  the printed reason when it is unreachable). Tests share it, so create your
  own users (`server.new_user(tokens=...)`), never rely on global counts.
- `server_factory`: start a dedicated server with extra settings, e.g.
  `server_factory(env={"TOKENRENT_LOCKOUT_SECONDS": "2"})`; stopped after the test.
- `backend`: "sqlite" or "postgres" (the parameter).
"""
import os

import pytest

# Qt has no screen here; every Qt test runs offscreen.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Test servers hash with cheaper (still memory-hard) argon2 settings so the
# suite stays fast; production defaults live in server_stub/core/config.py.
os.environ.setdefault("TOKENRENT_ARGON2_MEMORY_KIB", "8192")
os.environ.setdefault("TOKENRENT_ARGON2_TIME_COST", "1")
# The whole suite is ONE client (127.0.0.1) that registers thousands of accounts and fails
# sign-ins, PINs and cards on purpose: per-address limits sized for a test suite, not for a
# vendor. Per-account limits keep their defaults; tests/server_stub/test_rate_limits.py sets
# its own small limits.
for _guard in ("SIGN_IN", "REGISTRATIONS", "PIN", "CARD_DECLINES"):
    os.environ.setdefault(f"TOKENRENT_RATE_LIMIT_{_guard}_PER_ADDRESS", "100000/3600")

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request):
    if request.param == "postgres":
        from tests.support.server import pg_unavailable_reason

        reason = pg_unavailable_reason()
        if reason:
            pytest.skip(reason)
    return request.param


@pytest.fixture(scope="session")
def server(backend, tmp_path_factory):
    from tests.support.server import start_server

    srv, cleanup = start_server(backend, tmp_path_factory.mktemp(f"server-{backend}"))
    yield srv
    cleanup()


@pytest.fixture
def server_factory(backend, tmp_path):
    from tests.support.server import start_server

    cleanups = []

    def make(env: dict | None = None, demo: bool = False, workers: int = 1):
        srv, cleanup = start_server(backend, tmp_path / f"srv{len(cleanups)}", env=env, demo=demo,
                                    workers=workers)
        cleanups.append(cleanup)
        return srv

    yield make
    for c in cleanups:
        c()
