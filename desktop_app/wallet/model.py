"""The wallet statement (GET /v1/ledger) as an item model, and its balance series.

Each row is the server's ledger line as it came: its time, memo, the change of the
spendable wallet and ``balance_after``, the balance the server counted after it. The
storefront does not add the lines up again.
"""
from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt

from desktop_app.api.replies import Ledger, LedgerLine
from desktop_app.money import Pricing


def statement_rows(ledger: Ledger) -> list[LedgerLine]:
    """The lines that move spendable tokens, newest first. An order's hold is the line that
    takes its tokens; its posting ("order 1", 0 tokens) would only repeat it."""
    return [line for line in ledger.entries if line.tokens != 0]       # the server sends newest first


def balance_series(ledger: Ledger) -> list[tuple[float, float]]:
    """(time, balance after) for the chart, oldest first: the server's own balances."""
    return [(line.at.timestamp(), float(line.balance_after)) for line in reversed(ledger.entries)
            if line.balance_after is not None]


class LedgerModel(QAbstractTableModel):
    HEADERS = ["Date", "What", "Tokens", "Balance"]

    def __init__(self, parent=None):
        super().__init__(parent)
        self._rows: list[LedgerLine] = []
        self.pricing = Pricing()          # set by the wallet page once the token price is known

    def set_pricing(self, pricing: Pricing) -> None:
        self.pricing = pricing
        if self._rows:
            self.dataChanged.emit(self.index(0, 2), self.index(len(self._rows) - 1, 3))

    def set_ledger(self, ledger: Ledger) -> None:
        self.beginResetModel()
        self._rows = statement_rows(ledger)
        self.endResetModel()

    def clear(self) -> None:
        """No statement on show (signed out)."""
        self.beginResetModel()
        self._rows = []
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
                return r.at.astimezone().strftime("%Y-%m-%d %H:%M")
            if col == 1:
                return r.memo
            if col == 2:       # tokens and their cash equivalent (FIG 17), with the sign
                return ("+" if r.tokens > 0 else "") + self.pricing.tokens_text(r.tokens)
            if col == 3:
                return self.pricing.tokens_text(r.balance_after) if r.balance_after is not None else ""
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (2, 3):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None
