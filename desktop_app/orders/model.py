"""FIG 8: the order list as an item model.

Each line is one offer of one product with the chosen tier and the answer to
"is it installed on this computer?". RT (tokens required) is recomputed on
every change and announced with ``totalsChanged``; AT comes from the wallet.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal

from desktop_app.api.replies import Offer, OfferKind, OrderListItem, Product, Tier
from desktop_app.money import Pricing, format_cents
from desktop_app.store.models import KIND_LABELS

LineRole = Qt.ItemDataRole.UserRole + 10
TierChoicesRole = Qt.ItemDataRole.UserRole + 11


@dataclass
class OrderLine:
    product: Product
    offer: Offer
    tier_index: int = 0
    installed: bool = False
    license_id: int | None = None   # set: extend (rentals) or convert this license

    @property
    def kind(self) -> OfferKind:
        return self.offer.kind

    @property
    def tiers(self) -> list[Tier]:
        return self.offer.tiers

    @property
    def tier(self) -> Tier | None:
        tiers = self.tiers
        return tiers[self.tier_index] if tiers else None

    @property
    def tokens(self) -> int:
        tier = self.tier
        return tier.tokens if tier is not None else self.offer.price_tokens

    @property
    def quantity(self) -> int | None:
        tier = self.tier
        return tier.quantity if tier is not None else None

    def tier_text(self, index: int | None = None) -> str:
        tiers = self.tiers
        if not tiers:
            return "Convert to permanent" if self.kind == OfferKind.CONVERT else "Permanent"
        tier = tiers[self.tier_index if index is None else index]
        return f"{tier.quantity:,} {self.offer.unit}"      # the server's unit: days, uses, processings

    def description(self) -> str:
        name = self.product.name
        if self.kind == OfferKind.PURCHASE:
            return f"{name}: purchase"
        if self.kind == OfferKind.CONVERT:
            return f"{name}: convert your rental to a permanent license"
        what = f"{name}: rent for {self.tier_text()}"
        return what + (" more (extension)" if self.license_id is not None else "")

    def item(self) -> dict:
        """The order item on the wire: {offer_id, quantity?, license_id?}."""
        item: dict[str, Any] = {"offer_id": self.offer.id}
        if self.quantity is not None:
            item["quantity"] = self.quantity
        if self.license_id is not None:
            item["license_id"] = self.license_id
        return item

    def needs_download(self) -> bool:
        """FIG 9: only programs that are not installed here get downloaded."""
        return not self.installed and self.kind != OfferKind.CONVERT and self.license_id is None


class OrderListModel(QAbstractTableModel):
    COL_PRODUCT, COL_KIND, COL_TIER, COL_TOKENS, COL_INSTALLED = range(5)
    HEADERS = ["Product", "How", "Quantity", "Tokens", "Installed on this computer?"]

    totalsChanged = Signal(int)   # the sum of the lines' prices (the server's quote decides what is paid)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._lines: list[OrderLine] = []
        self.pricing = None          # desktop_app.money.Pricing: cash equivalents (FIG 17)
        for sig in (self.dataChanged, self.rowsInserted, self.rowsRemoved, self.modelReset):
            sig.connect(self._announce_totals)

    # -- content ----------------------------------------------------------
    def lines(self) -> list[OrderLine]:
        return list(self._lines)

    def line(self, row: int) -> OrderLine:
        return self._lines[row]

    def required_tokens(self) -> int:
        return sum(line.tokens for line in self._lines)

    def items(self) -> list[dict]:
        return [line.item() for line in self._lines]

    def installed_product_ids(self) -> list[int]:
        return [line.product.id for line in self._lines if line.installed]

    def add_line(self, line: OrderLine) -> int:
        """Adds a line, or returns the row of the same offer already there."""
        for row, existing in enumerate(self._lines):
            if existing.offer.id == line.offer.id and existing.license_id == line.license_id:
                return row
        row = len(self._lines)
        self.beginInsertRows(QModelIndex(), row, row)
        self._lines.append(line)
        self.endInsertRows()
        return row

    def remove_rows(self, rows: list[int]) -> None:
        for row in sorted(set(rows), reverse=True):
            if 0 <= row < len(self._lines):
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._lines[row]
                self.endRemoveRows()

    def clear(self) -> None:
        self.beginResetModel()
        self._lines = []
        self.endResetModel()

    def set_lines(self, lines: list[OrderLine]) -> None:
        self.beginResetModel()
        self._lines = list(lines)
        self.endResetModel()

    def set_tier(self, row: int, tier_index: int) -> None:
        self.setData(self.index(row, self.COL_TIER), tier_index, Qt.ItemDataRole.EditRole)

    def set_installed(self, row: int, installed: bool) -> None:
        self.setData(self.index(row, self.COL_INSTALLED),
                     Qt.CheckState.Checked if installed else Qt.CheckState.Unchecked,
                     Qt.ItemDataRole.CheckStateRole)

    def _announce_totals(self, *args) -> None:
        self.totalsChanged.emit(self.required_tokens())

    # -- Qt model API -------------------------------------------------------
    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self._lines)

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal \
                and 0 <= section < len(self.HEADERS):
            return self.HEADERS[section]
        return None

    def flags(self, index):
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        line = self._lines[index.row()]
        if index.column() == self.COL_TIER and len(line.tiers) > 1:
            flags |= Qt.ItemFlag.ItemIsEditable
        if index.column() == self.COL_INSTALLED:
            flags |= Qt.ItemFlag.ItemIsUserCheckable
        return flags

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._lines):
            return None
        line = self._lines[index.row()]
        col = index.column()
        if role == LineRole:
            return line
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.COL_PRODUCT:
                return line.product.name
            if col == self.COL_KIND:
                label = KIND_LABELS[line.kind]
                return f"{label} (extend)" if line.license_id is not None and line.kind != OfferKind.CONVERT else label
            if col == self.COL_TIER:
                return line.tier_text()
            if col == self.COL_TOKENS:
                cents = self.pricing.cash_cents(line.tokens) if self.pricing is not None else None
                return f"{line.tokens:,}" + (f" ({format_cents(cents, self.pricing.currency)})" if cents else "")
            if col == self.COL_INSTALLED:
                return "Yes" if line.installed else "No"
        if role == Qt.ItemDataRole.EditRole and col == self.COL_TIER:
            return line.tier_index
        if role == TierChoicesRole and col == self.COL_TIER:
            return [line.tier_text(i) + " — " + self._tokens_text(t.tokens) for i, t in enumerate(line.tiers)]
        if role == Qt.ItemDataRole.CheckStateRole and col == self.COL_INSTALLED:
            return Qt.CheckState.Checked if line.installed else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.TextAlignmentRole and col == self.COL_TOKENS:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _tokens_text(self, tokens: int) -> str:
        """'80 tokens ($8.00)' once the token price is known (FIG 17)."""
        return (self.pricing or Pricing()).tokens_text(tokens)

    def setData(self, index, value, role=Qt.ItemDataRole.EditRole):
        if not index.isValid() or not 0 <= index.row() < len(self._lines):
            return False
        line = self._lines[index.row()]
        if index.column() == self.COL_TIER and role == Qt.ItemDataRole.EditRole:
            try:
                tier_index = int(value)
            except (TypeError, ValueError):
                return False
            if not 0 <= tier_index < len(line.tiers) or tier_index == line.tier_index:
                return False
            line.tier_index = tier_index
            self.dataChanged.emit(self.index(index.row(), self.COL_TIER), self.index(index.row(), self.COL_TOKENS))
            return True
        if index.column() == self.COL_INSTALLED and role == Qt.ItemDataRole.CheckStateRole:
            state = value.value if hasattr(value, "value") else value
            line.installed = int(state) == Qt.CheckState.Checked.value
            self.dataChanged.emit(index, index)
            return True
        return False


def lines_from_items(items: list[OrderListItem], find_offer: Callable[[int], tuple[Product, Offer] | None],
                     installed: Callable[[int], bool]) -> list[OrderLine]:
    """Rebuild the saved order list's items against the catalog."""
    lines = []
    for item in items:
        found = find_offer(item.offer_id)
        if found is None:
            continue  # the offer was withdrawn since the list was saved
        product, offer = found
        tier_index = next((i for i, tier in enumerate(offer.tiers) if tier.quantity == item.quantity), 0)
        lines.append(OrderLine(product, offer, tier_index, installed(product.id), item.license_id))
    return lines
