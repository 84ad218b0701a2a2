"""The library's local cache, so the library works off-line.

One JSON file, written atomically: the server's licenses, the agent's own
view of what is left, the vendor key (each as the typed reply it came as,
desktop_app.wire.dump), and a short history of "left" figures per license (for
the usage chart). A cache written in another shape (an older storefront) reads
as empty: the next sign-in fills it again.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from desktop_app.agent.replies import AgentLicense
from desktop_app.api.replies import License, VendorKey
from desktop_app.wire import ReplyError, dump, parse

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

    def _read(self, key: str, shape, empty):
        try:
            return parse(shape, self.data.get(key) if self.data.get(key) is not None else empty, key)
        except ReplyError:
            return empty

    @property
    def licenses(self) -> list[License]:
        return self._read("licenses", list[License], [])

    @property
    def agent(self) -> list[AgentLicense]:
        return self._read("agent", list[AgentLicense], [])

    @property
    def vendor_key(self) -> VendorKey | None:
        return self._read("vendor_key", VendorKey | None, None)

    @property
    def member_licenses(self) -> dict[str, list[License]]:
        """Each mall member's list of the user's licenses there, as last read."""
        return self._read("member_licenses", dict[str, list[License]], {})

    def record_members(self, members: dict[str, list[License]]) -> None:
        known = dict(self.data.get("member_licenses") or {})
        known.update({member: dump(listed) for member, listed in members.items()})
        self.data["member_licenses"] = known

    def set_vendor_key(self, vendor_key: VendorKey) -> None:
        self.data["vendor_key"] = dump(vendor_key)

    def record(self, licenses: list[License] | None, agent: list[AgentLicense] | None,
               lefts: dict[str, float]) -> None:
        if licenses is not None:
            self.data["licenses"] = dump(licenses)
        if agent is not None:
            self.data["agent"] = dump(agent)
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
