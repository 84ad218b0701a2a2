"""server_stub/loop_reads.py: the bearer token's lookup read on the event loop, on both
databases (a real migrated database, a real user and session)."""
from __future__ import annotations

import asyncio
from datetime import UTC

import psycopg
import pytest

from tests.support.server import PG_ADMIN_URL, migrated_database


def _signed_in_user(username: str) -> str:
    from server_stub.db import write_session
    from server_stub.services import accounts

    with write_session() as db:
        accounts.create_user(db, username=username, password="a long password 1", pin="1234",
                             full_name="Loop Reader", email=f"{username}@example.com")
    token, _expires = accounts.authenticate(username, "a long password 1")
    return token


def _read_by_connection(token: str) -> tuple:
    from server_stub.db import single_statement
    from server_stub.services.accounts import SESSION_QUERY, session_params

    with single_statement() as conn:
        return tuple(conn.execute(SESSION_QUERY, session_params(token)).one())


def _read_on_loop(*tokens: str) -> list:
    from server_stub.loop_reads import first_row
    from server_stub.services.accounts import SESSION_QUERY, session_params

    async def main():
        return await asyncio.gather(*(first_row(SESSION_QUERY, session_params(t)) for t in tokens))

    return asyncio.run(main())


def test_a_row_read_on_the_loop_is_the_row_a_connection_reads(backend, tmp_path):
    from server_stub.services.accounts import live_user
    from server_stub.vocabulary import AccountStatus, Role

    with migrated_database(backend, tmp_path):
        token = _signed_in_user("loopreader")
        (row,) = _read_on_loop(token)
        expected = _read_by_connection(token)
        assert row == expected
        assert [type(v) for v in row] == [type(v) for v in expected]   # the result processors ran
        assert row[1].tzinfo is not None and row[1].utcoffset() == UTC.utcoffset(None)
        user = live_user(row)
        assert user is not None and user.username == "loopreader"
        assert user.role == Role.USER and user.status == AccountStatus.INACTIVE
        assert _read_on_loop("not a token") == [None]


def test_many_reads_at_once_all_answer(backend, tmp_path):
    with migrated_database(backend, tmp_path):
        tokens = [_signed_in_user(f"reader{i}") for i in range(3)]
        rows = _read_on_loop(*(tokens * 20), "no such token")
        assert rows[-1] is None
        assert [r[2 + _column("username")] for r in rows[:-1]] == [f"reader{i}" for i in range(3)] * 20


def _column(name: str) -> int:
    from server_stub.services.accounts import _USER_ATTRIBUTES

    return [a.key for a in _USER_ATTRIBUTES].index(name)


@pytest.mark.postgres
def test_postgres_opens_at_most_a_few_connections_and_replaces_a_dead_one(tmp_path):
    from tests.support.server import pg_unavailable_reason

    if reason := pg_unavailable_reason():
        pytest.skip(reason)
    from server_stub.loop_reads import APPLICATION_NAME, MAX_POSTGRES_CONNECTIONS, first_row
    from server_stub.services.accounts import SESSION_QUERY, session_params

    with migrated_database("postgres", tmp_path) as url:
        database = url.rsplit("/", 1)[1]
        token = _signed_in_user("deadconn")
        params = session_params(token)

        def backends(conn: psycopg.Connection) -> set[int]:
            return {pid for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
                (database, APPLICATION_NAME)).fetchall()}

        async def main():
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                rows = await asyncio.gather(*(first_row(SESSION_QUERY, params) for _ in range(40)))
                assert all(r is not None and r[2 + _column("username")] == "deadconn" for r in rows)
                opened = backends(admin)
                assert 1 <= len(opened) <= MAX_POSTGRES_CONNECTIONS
                for pid in opened:   # the database ends every connection of the reader (a restart)
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                row = await first_row(SESSION_QUERY, params)   # the dead one is dropped, the read retried
                assert row is not None and row[2 + _column("username")] == "deadconn"
                assert not backends(admin) & opened

        asyncio.run(main())
