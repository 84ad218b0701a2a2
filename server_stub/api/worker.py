"""One worker-thread hop per request on the hot routes (the money path).

FastAPI runs every plain `def` dependency and endpoint in anyio's thread pool, one hop to a
thread and back for each; on two cores a hop costs more CPU than a short statement. A hot route
is `async def`, takes only dependencies that do no I/O (the bearer token, the address:
deps.SignedIn), and does all its blocking work, the session lookup included, in ONE call of
`in_worker`. `loop.run_in_executor` on a plain ThreadPoolExecutor is the cheapest hop the
standard library offers (anyio's adds a capacity limiter and cancel scopes on top).
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from ..core.config import get_settings

P = ParamSpec("P")
T = TypeVar("T")

# Few threads: on two cores, 16 requests each in its own thread spend their time taking the GIL
# from one another (transfers under 16 connections, docs/performance.md: 32 threads 171/s,
# 8 threads 249-259/s on PostgreSQL, 234 -> 321-363/s on SQLite). Nothing here may wait long
# (an open-token order's wait for the MSP goes to anyio's pool: routes/store.py).
_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:   # on first use: the settings are read by then
        _executor = ThreadPoolExecutor(max_workers=get_settings().hot_path_threads, thread_name_prefix="tokenrent-hot")
    return _executor


async def in_worker(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)` in a worker thread, with the caller's context variables."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pool(), call)
