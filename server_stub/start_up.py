"""The start-up work of `serve` (migrations, keys, demo data) in a child process.

What the migrations import (Alembic, Mako, every migration script) stays in a process's memory
for good: ~13 MB of RSS in a serving process that needs none of it (docs/performance.md, issue
13's memory row). Where the platform forks, `serve` does that work in a forked child and waits
for it; the serving process starts clean. Elsewhere (Windows) it runs in the process itself.
"""
from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable


def run_apart(work: Callable[[], None]) -> None:
    """`work()` in a forked child, waited for; SystemExit with the child's code if it failed
    (its traceback is already on stderr). Call it before any thread is started."""
    if not hasattr(os, "fork"):
        work()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:   # the child: never return into the caller's code
        code = 0
        try:
            work()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(code)
