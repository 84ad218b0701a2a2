"""For Qt programs run outside pytest-qt (the screenshot script, probes that need a
process of their own): process events until a condition holds."""
from __future__ import annotations

import time


def wait_until(cond, timeout: float = 60.0) -> None:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents()
        if cond():
            return
        time.sleep(0.02)
    raise TimeoutError(getattr(cond, "__name__", "condition"))


def settle() -> None:
    """Until the storefront's background jobs are done and their results painted."""
    from PySide6.QtWidgets import QApplication

    from desktop_app.api.worker import pending_jobs

    wait_until(lambda: pending_jobs() == 0)
    for _ in range(10):
        QApplication.instance().processEvents()
