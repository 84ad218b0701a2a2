"""The bank tests' load under kills: load threads run while a chaos thread kills -9 servers,
then the run is checked as one (tests/mall/test_network_bank.py, tests/mall/test_open_bank.py).

    load_seconds = run_under_chaos(chaos, load.run, THREADS, "load", fail)
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol


class ChaosThread(Protocol):
    """What the helper needs of a chaos object (test_network_bank's Chaos); read-only, so a
    list and a Counter fit."""
    @property
    def servers(self) -> Sequence[tuple[str, Any]]: ...       # (name, server) of every server it kills
    @property
    def kills(self) -> Mapping[str, int]: ...                 # kills so far, by name
    @property
    def stop(self) -> threading.Event: ...
    @property
    def first_round_done(self) -> threading.Event: ...        # the load may end
    @property
    def error(self) -> BaseException | None: ...              # what its thread raised

    def run(self) -> None: ...


LoadRun = Callable[[int, Callable[[], bool]], None]   # (thread number, keep_going) -> None


def run_under_chaos(chaos: ChaosThread, load_run: LoadRun, threads: int, name: str,
                    fail: Callable[[str], str]) -> float:
    """Runs `load_run(n, keep_going)` on `threads` threads (named `{name}-{n}`) until the chaos
    thread's first round of kills is done, stops the chaos, and raises what either raised; the
    seconds the load took."""
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            load_run(n, lambda: not chaos.first_round_done.is_set())
        except BaseException as e:   # re-raised below, in the test's thread
            errors.append(e)

    t_load = time.monotonic()
    chaos_thread = threading.Thread(target=chaos.run, name="chaos", daemon=True)
    workers = [threading.Thread(target=worker, args=(n,), name=f"{name}-{n}", daemon=True) for n in range(threads)]
    chaos_thread.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=600)
    chaos.stop.set()
    chaos_thread.join(timeout=120)
    load_seconds = time.monotonic() - t_load
    if chaos.error is not None:
        raise AssertionError(fail(f"chaos: {chaos.error}")) from chaos.error
    if errors:
        raise AssertionError(fail(f"load: {errors[0]!r}")) from errors[0]
    assert not any(t.is_alive() for t in workers), fail("a load thread is still running")
    # every server was killed at least once while the load ran
    assert set(chaos.kills) == {srv for srv, _ in chaos.servers}, fail(f"kills {dict(chaos.kills)}")
    return load_seconds


def log_faults(servers: Sequence[tuple[str, Any]]) -> dict[str, list[str]]:
    """Each server's tracebacks in its log, one short line each (the log line's message and the
    exception's last line; for a traceback Python printed itself, its exception line), so a
    failure on CI names its error even when only the end of the report is shown."""
    out: dict[str, list[str]] = {}
    for name, srv in servers:
        found: list[str] = []
        lines = srv.log_text().splitlines()
        for i, line in enumerate(lines):
            if "Traceback" not in line:
                continue
            if line.lstrip().startswith("{"):
                try:
                    entry = json.loads(line)
                except ValueError:
                    entry = {}
                exc = str(entry.get("exc", "")).strip().splitlines()
                found.append(f"{entry.get('msg', '?')} {entry.get('path', '')}: {exc[-1] if exc else line[:200]}")
            else:
                after = next((ln for ln in lines[i + 1:] if ln and not ln[0].isspace()), "?")
                found.append(after[:300])
        if found:
            out[name] = found
    return out
