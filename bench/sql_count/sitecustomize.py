"""Counts every SQL statement (and commit) a server process runs, for bench/profiles.py.

Put this folder first on PYTHONPATH and set BENCH_SQL_COUNT=1 in a server's environment; each
SIGUSR1 then writes the counts so far to /tmp/sqlcount-<pid>-<n>.json (n = 1, 2, ...). Two
snapshots around a phase give the statements per operation (`bench/profiles.py sql A B N`).
Python imports a sitecustomize module at start-up; without BENCH_SQL_COUNT this one does nothing."""
from __future__ import annotations

import collections
import json
import os
import re
import signal
import threading


def _install() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    counts: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    taken = [0]

    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(conn, cursor, statement, params, context, executemany) -> None:
        key = re.sub(r"\s+", " ", statement)[:150]
        with lock:
            counts[key] += 1

    @event.listens_for(Engine, "commit")
    def _commit(conn) -> None:
        with lock:
            counts["<COMMIT>"] += 1

    def dump(*_: object) -> None:
        taken[0] += 1
        with lock:
            data = dict(counts)
        with open(f"/tmp/sqlcount-{os.getpid()}-{taken[0]}.json", "w") as f:
            json.dump(data, f)

    signal.signal(signal.SIGUSR1, dump)


if os.environ.get("BENCH_SQL_COUNT"):
    _install()
