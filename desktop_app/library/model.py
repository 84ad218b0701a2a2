"""The library: every license the user holds, with what is left.

Rows come from the server's licenses (cached for off-line use) joined with
the agent's own view of the remaining counts, which is what actually decides
whether a program may run.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt

EntryRole = Qt.ItemDataRole.UserRole + 20
FractionRole = Qt.ItemDataRole.UserRole + 21   # 0..1 left, or None for permanent

KIND_NAMES = {"permanent": "Purchased", "time": "Rented by time", "uses": "Rented by uses",
              "processings": "Rented by processings"}
_KIND_ALIASES = {"purchase": "permanent", "rent_time": "time", "rent_uses": "uses",
                 "rent_processings": "processings", "convert": "permanent"}


def parse_time(value) -> datetime | None:
    if not value:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _first(d: dict, *keys, default=None):
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return default


@dataclass
class LibraryEntry:
    license_id: Any
    product_id: Any
    name: str
    kind: str                     # permanent | time | uses | processings
    total: float | None = None    # uses / processings granted, or seconds of the rental
    left: float | None = None     # uses / processings left, or seconds left
    expires_at: datetime | None = None
    low: bool = False
    installed: bool = False
    store_url: str = ""
    agent_known: bool = False     # the agent holds a code for it on this computer
    history: tuple = ()           # the agent's daily use: ((date "YYYY-MM-DD", used), ...)
    other_device: str = ""        # the license is bound to this other computer of the user's

    @property
    def fraction(self) -> float | None:
        if self.kind == "permanent" or self.left is None or not self.total:
            return None
        return max(0.0, min(1.0, self.left / self.total))

    def left_text(self, now: datetime | None = None) -> str:
        if self.kind == "permanent":
            return "Yours to keep"
        if self.other_device and not self.agent_known:
            return f"On your other computer “{self.other_device}”"
        if self.left is None:
            return "Unknown (not on this computer yet)"
        if self.kind == "time":
            secs = int(self.left)
            if secs <= 0:
                return "Expired"
            days, rem = divmod(secs, 86400)
            hours, rem = divmod(rem, 3600)
            return f"{days} d {hours} h left" if days else f"{hours} h {rem // 60} min left"
        unit = "uses" if self.kind == "uses" else "processings"
        total = f" of {int(self.total):,}" if self.total else ""
        return f"{int(self.left):,}{total} {unit} left"


def build_entries(licenses: list[dict], agent: list[dict], installed_ids: set[str],
                  now: datetime | None = None, device_id: str | None = None) -> list[LibraryEntry]:
    now = now or datetime.now(timezone.utc)
    by_license = {str(a.get("license_id")): a for a in agent if a.get("license_id") is not None}
    by_product = {str(a.get("product_id")): a for a in agent if a.get("product_id") is not None}
    entries = []
    # licenses the agent holds that the server list does not show (off-line, or not cached yet)
    listed = {str(l.get("id")) for l in licenses}
    licenses = list(licenses) + [
        {"id": a["license_id"], "product_id": a.get("product_id"), "product_name": a.get("product_name"),
         "kind": a.get("kind"), "store_url": a.get("store_url")}
        for a in agent if a.get("license_id") is not None and str(a["license_id"]) not in listed]
    for lic in licenses:
        kind = str(_first(lic, "kind", "type", default="permanent"))
        kind = _KIND_ALIASES.get(kind, kind)
        product_id = _first(lic, "product_id")
        a = by_license.get(str(lic.get("id"))) or by_product.get(str(product_id)) or {}
        entry = LibraryEntry(
            license_id=lic.get("id"), product_id=product_id,
            name=str(_first(lic, "product_name", "name", default=a.get("product_name") or f"Product {product_id}")),
            kind=kind, store_url=str(_first(lic, "store_url", default=a.get("store_url", ""))),
            installed=str(product_id) in installed_ids, agent_known=bool(a))
        if device_id and lic.get("device_id") and lic["device_id"] != device_id:
            entry.other_device = str(lic.get("device_name") or lic["device_id"])
        if kind == "time":
            issued = parse_time(_first(lic, "starts_at", "created_at", "issued_at"))
            expires = parse_time(_first(a, "expires_at", default=_first(lic, "expires_at")))
            entry.expires_at = expires
            if expires is not None:
                entry.left = max(0.0, (expires - now).total_seconds())
                if issued is not None:
                    entry.total = max(1.0, (expires - issued).total_seconds())
            if a.get("remaining") is not None:       # the agent's clock-checked view wins
                entry.left = float(a["remaining"])
            if entry.total is None and expires is not None:
                start = parse_time(a.get("issued_at"))
                if start is not None:
                    entry.total = max(1.0, (expires - start).total_seconds())
        elif kind in ("uses", "processings"):
            entry.total = _first(a, f"{kind}_total", "total", kind, default=_first(lic, f"{kind}_total", kind))
            entry.left = _first(a, f"{kind}_left", "remaining", "left")
            if entry.left is None and not a:
                entry.left = _first(lic, f"{kind}_left", "remaining")
            entry.total = float(entry.total) if entry.total is not None else None
            entry.left = float(entry.left) if entry.left is not None else None
        entry.history = tuple((h.get("date"), h.get("used", 0)) for h in a.get("history") or [])
        entry.low = bool(_first(a, "warning", "low", default=False))
        if not entry.low and a.get("low_threshold") is not None and entry.left is not None:
            entry.low = entry.left <= float(a["low_threshold"])
        entries.append(entry)
    return entries


class LibraryModel(QAbstractTableModel):
    COL_NAME, COL_KIND, COL_LEFT, COL_INSTALLED = range(4)
    HEADERS = ["Program", "License", "What is left", "On this computer"]

    def __init__(self, parent=None):
        super().__init__(parent)
        self._entries: list[LibraryEntry] = []

    def set_entries(self, entries: list[LibraryEntry]) -> None:
        self.beginResetModel()
        self._entries = list(entries)
        self.endResetModel()

    def entries(self) -> list[LibraryEntry]:
        return list(self._entries)

    def entry(self, row: int) -> LibraryEntry:
        return self._entries[row]

    def row_of_product(self, product_id) -> int:
        for row, e in enumerate(self._entries):
            if str(e.product_id) == str(product_id):
                return row
        return -1

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self._entries)

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal \
                and 0 <= section < len(self.HEADERS):
            return self.HEADERS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        e = self._entries[index.row()]
        col = index.column()
        if role == EntryRole:
            return e
        if role == FractionRole and col == self.COL_LEFT:
            return e.fraction
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.COL_NAME:
                return e.name
            if col == self.COL_KIND:
                return KIND_NAMES.get(e.kind, e.kind)
            if col == self.COL_LEFT:
                return e.left_text() + (" — running low" if e.low else "")
            if col == self.COL_INSTALLED:
                return "Installed" if e.installed else "Not installed"
        if role == Qt.ItemDataRole.ToolTipRole and col == self.COL_LEFT and e.expires_at is not None:
            return f"Ends {e.expires_at.astimezone():%Y-%m-%d %H:%M}"
        return None
