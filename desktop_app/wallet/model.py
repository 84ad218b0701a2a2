"""The wallet statement (GET /v1/ledger) as an item model, and its balance series."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt

from desktop_app.library.model import parse_time
from desktop_app.money import Pricing


def _first(d: dict, *keys, default=None):
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return default


def normalize_ledger(answer: Any) -> list[dict]:
    """Statement rows, oldest first: {at (datetime|None), tokens (signed int), description, balance}."""
    rows = answer.get("entries", answer.get("items", [])) if isinstance(answer, dict) else (answer or [])
    out = []
    for r in rows:
        out.append({
            "at": parse_time(_first(r, "created_at", "at", "posted_at", "time")),
            "tokens": int(_first(r, "tokens", "amount", "delta", default=0)),
            "description": str(_first(r, "description", "memo", "kind", "type", default="")),
            "balance": _first(r, "balance", "balance_after"),
        })
    out.sort(key=lambda r: (r["at"] is None, r["at"] or 0))
    running = 0
    for r in out:
        running += r["tokens"]
        if r["balance"] is None:
            r["balance"] = running
        else:
            r["balance"] = int(r["balance"])
            running = r["balance"]
    return out


def balance_series(rows: list[dict]) -> list[tuple[float, float]]:
    return [(r["at"].timestamp(), float(r["balance"])) for r in rows if r["at"] is not None]


class LedgerModel(QAbstractTableModel):
    HEADERS = ["Date", "What", "Tokens", "Balance"]

    def __init__(self, parent=None):
        super().__init__(parent)
        self._rows: list[dict] = []
        self.pricing = Pricing()          # set by the wallet page once the token price is known

    def set_pricing(self, pricing: Pricing) -> None:
        self.pricing = pricing
        if self._rows:
            self.dataChanged.emit(self.index(0, 2), self.index(len(self._rows) - 1, 3))

    def set_rows(self, rows: list[dict]) -> None:
        """Newest first. Rows that move no tokens are left out: an order's hold is the row
        that takes them, its posting ("order 1", 0 tokens) would only repeat it."""
        self.beginResetModel()
        self._rows = [r for r in reversed(rows) if r["tokens"] != 0]
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal \
                and 0 <= section < len(self.HEADERS):
            return self.HEADERS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        r = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return r["at"].astimezone().strftime("%Y-%m-%d %H:%M") if r["at"] else ""
            if col == 1:
                return r["description"].replace("_", " ")
            if col == 2:       # tokens and their cash equivalent (FIG 17), with the sign
                return ("+" if r["tokens"] > 0 else "") + self.pricing.tokens_text(r["tokens"])
            if col == 3:
                return self.pricing.tokens_text(r["balance"])
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (2, 3):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None
