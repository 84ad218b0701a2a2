"""The library's local cache, so the library works off-line.

One JSON file, written atomically: the server's licenses, the agent's own
view of what is left, the vendor key, and a short history of "left" figures
per license (for the usage chart).
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

MAX_HISTORY = 500


class LibraryCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.data: dict[str, Any] = {"licenses": [], "agent": [], "history": {}, "vendor_key": None,
                                     "saved_at": None, "username": ""}
        self.load()

    def load(self) -> None:
        try:
            raw = json.loads(self.path.read_text("utf-8"))
            if isinstance(raw, dict):
                self.data.update(raw)
        except (OSError, ValueError):
            pass

    def save(self) -> None:
        """Snapshot now, write on a worker thread (writes stay in order: one writer lock)."""
        self.data["saved_at"] = time.time()
        text = json.dumps(self.data)
        from desktop_app.api.worker import run_async
        run_async(lambda: self._write(text))

    def save_now(self) -> None:
        self._write(json.dumps(self.data))

    def _write(self, text: str) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(text, "utf-8")
            os.replace(tmp, self.path)

    @property
    def licenses(self) -> list[dict]:
        return list(self.data.get("licenses") or [])

    @property
    def agent(self) -> list[dict]:
        return list(self.data.get("agent") or [])

    def record(self, licenses: list[dict] | None, agent: list[dict] | None, lefts: dict[str, float]) -> None:
        if licenses is not None:
            self.data["licenses"] = licenses
        if agent is not None:
            self.data["agent"] = agent
        now = time.time()
        history = self.data.setdefault("history", {})
        for license_id, left in lefts.items():
            series = history.setdefault(str(license_id), [])
            if not series or series[-1][1] != left:
                series.append([now, left])
                del series[:-MAX_HISTORY]
        self.save()

    def history(self, license_id) -> list[tuple[float, float]]:
        return [tuple(p) for p in self.data.get("history", {}).get(str(license_id), [])]
