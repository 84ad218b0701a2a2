"""Run blocking work (network, disk, subprocesses) off the UI thread.

``run_async(fn, on_done, on_error)`` queues ``fn`` on the global QThreadPool.
The callbacks run on the UI thread: the relay QObject is created on the
calling (UI) thread, and the worker emits its signals across threads, so Qt
delivers them queued.
"""
from __future__ import annotations

import traceback
from typing import Any
from collections.abc import Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from desktop_app.api.client import ApiError

_live_relays: set[_Relay] = set()


class _Relay(QObject):
    done = Signal(object)
    failed = Signal(object)

    def __init__(self, on_done, on_error):
        super().__init__()
        self._on_done = on_done
        self._on_error = on_error
        self.done.connect(self._deliver_done)
        self.failed.connect(self._deliver_error)

    @Slot(object)
    def _deliver_done(self, value):
        _live_relays.discard(self)
        _deliver(self._on_done, value)

    @Slot(object)
    def _deliver_error(self, error):
        _live_relays.discard(self)
        _deliver(self._on_error, error)


def _deliver(callback, value) -> None:
    if callback is None:
        return
    try:
        callback(value)
    except RuntimeError as exc:
        # The window the answer was meant for was closed meanwhile: nobody is waiting for it.
        if "already deleted" not in str(exc):
            raise


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay):
        super().__init__()
        self._fn = fn
        self._relay = relay

    def run(self):
        try:
            value = self._fn()
        except Exception as exc:
            if hasattr(exc, "user_message"):   # our own errors carry a message for the user
                self._emit(self._relay.failed, exc)
                return
            traceback.print_exc()   # a bug: logged for us, a plain sentence for the user
            self._emit(self._relay.failed, ApiError(f"Something went wrong: {exc}"))
        else:
            self._emit(self._relay.done, value)

    @staticmethod
    def _emit(signal, value) -> None:
        try:
            signal.emit(value)
        except RuntimeError:
            pass    # the app is closing and the relay is gone: nobody waits for this answer


# The jobs wait on the network, on subprocesses (the agent, a launched program) and on
# disk, not on the CPU: far more threads than cores, so a long job never holds up a click.
MAX_THREADS = 32


def run_async(fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
              on_error: Callable[[ApiError], None] | None = None) -> None:
    relay = _Relay(on_done, on_error)
    _live_relays.add(relay)
    pool = QThreadPool.globalInstance()
    if pool.maxThreadCount() < MAX_THREADS:
        pool.setMaxThreadCount(MAX_THREADS)
    pool.start(_Job(fn, relay))


def pending_jobs() -> int:
    return len(_live_relays)
