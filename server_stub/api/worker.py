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

P = ParamSpec("P")
T = TypeVar("T")

# as many threads as the database pool lends connections to at once (db.py: 20 + 20 overflow)
_executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="tokenrent-hot")


async def in_worker(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)` in a worker thread, with the caller's context variables."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_executor, call)
