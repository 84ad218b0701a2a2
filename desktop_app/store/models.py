"""Catalog item models (FIG 6 categories, FIG 7 availability grid).

Models hold plain dicts from the server; widgets only see them through
Qt's model/view API.
"""
from __future__ import annotations

from typing import Any

from desktop_app.money import format_cents
from PySide6.QtCore import QAbstractListModel, QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt

# FIG 7's column headings: offer kind -> heading
KIND_COLUMNS = [
    ("purchase", "Purchase"),
    ("rent_time", "Rent by time"),
    ("rent_uses", "Rent by uses"),
    ("rent_processings", "Rent by processings"),
]
KIND_LABELS = {
    "purchase": "Purchase",
    "rent_time": "Rent by time",
    "rent_uses": "Rent by uses",
    "rent_processings": "Rent by processings",
    "convert": "Convert to permanent",
}
QUANTITY_UNITS = {"rent_time": "days", "rent_uses": "uses", "rent_processings": "processings"}

ProductRole = Qt.ItemDataRole.UserRole + 1
OfferRole = Qt.ItemDataRole.UserRole + 2
IdRole = Qt.ItemDataRole.UserRole + 3


def offer_of_kind(product: dict, kind: str) -> dict | None:
    for offer in product.get("offers", []):
        if offer.get("kind") == kind:
            return offer
    return None


def offer_min_tokens(offer: dict) -> int:
    if offer.get("tiers"):
        return min(int(t["tokens"]) for t in offer["tiers"])
    return int(offer.get("tokens", 0))


def offer_summary(offer: dict) -> str:
    if offer.get("tiers"):
        unit = QUANTITY_UNITS.get(offer.get("kind", ""), "")
        return ", ".join(f"{int(t['quantity']):,} {unit}: {int(t['tokens'])}" for t in offer["tiers"])
    return f"{int(offer.get('tokens', 0))}"


class CategoryModel(QAbstractListModel):
    """FIG 6: the software categories. Row 0 is "All categories"."""

    ALL = None

    def __init__(self, parent=None):
        super().__init__(parent)
        self._categories: list[dict] = []

    def set_categories(self, categories: list[dict]) -> None:
        self.beginResetModel()
        self._categories = list(categories)
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self._categories) + 1

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() <= len(self._categories):
            return None
        cat = None if index.row() == 0 else self._categories[index.row() - 1]
        if role == Qt.ItemDataRole.DisplayRole:
            return "All categories" if cat is None else cat["name"]
        if role == IdRole:
            return None if cat is None else cat["id"]
        return None

    def name_of(self, category_id: Any) -> str:
        for c in self._categories:
            if c["id"] == category_id:
                return c["name"]
        return ""


class ProductTableModel(QAbstractTableModel):
    """FIG 7: one row per product; a column per way to get it."""

    NAME_COLUMN = 0
    COLUMNS = ["Product"] + [label.replace("Rent by ", "Rent by\n") for _, label in KIND_COLUMNS]

    def __init__(self, parent=None):
        super().__init__(parent)
        self._products: list[dict] = []
        self._haystacks: list[str] = []   # lower-cased name + description, for fast filtering
        self.pricing = None               # desktop_app.money.Pricing: cash equivalents (FIG 17)

    def set_pricing(self, pricing) -> None:
        self.pricing = pricing
        if self._products:
            self.dataChanged.emit(self.index(0, 1), self.index(len(self._products) - 1, len(self.COLUMNS) - 1))

    def set_products(self, products: list[dict]) -> None:
        self.beginResetModel()
        self._products = sorted(products, key=self._sort_key(0))
        self._haystacks = [f"{p.get('name', '')}\n{p.get('description', '')}".lower() for p in self._products]
        self.endResetModel()

    @staticmethod
    def _sort_key(column: int):
        if column <= 0:
            return lambda p: str(p.get("name", "")).lower()
        kind = KIND_COLUMNS[column - 1][0]

        def key(p):
            offer = offer_of_kind(p, kind)
            return (offer is None, offer_min_tokens(offer) if offer else 0, str(p.get("name", "")).lower())
        return key

    def sort(self, column, order=Qt.SortOrder.AscendingOrder):
        """Sorting here, in one Python sort, is far cheaper than a sorting proxy calling
        data() for every comparison (10,000 rows)."""
        self.layoutAboutToBeChanged.emit()
        old = {id(p): row for row, p in enumerate(self._products)}
        self._products.sort(key=self._sort_key(column), reverse=order == Qt.SortOrder.DescendingOrder)
        self._haystacks = [f"{p.get('name', '')}\n{p.get('description', '')}".lower() for p in self._products]
        new_rows = [old[id(p)] for p in self._products]
        from_list, to_list = [], []
        for new_row, old_row in enumerate(new_rows):
            if new_row != old_row:
                for col in range(self.columnCount()):
                    from_list.append(self.index(old_row, col))
                    to_list.append(self.index(new_row, col))
        self.changePersistentIndexList(from_list, to_list)
        self.layoutChanged.emit()

    def products(self) -> list[dict]:
        return list(self._products)

    def product(self, row: int) -> dict:
        return self._products[row]

    def product_by_id(self, product_id: Any) -> dict | None:
        for p in self._products:
            if str(p["id"]) == str(product_id):
                return p
        return None

    def haystack(self, row: int) -> str:
        return self._haystacks[row]

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self._products)

    def columnCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(self.COLUMNS):
            if role == Qt.ItemDataRole.DisplayRole:
                return self.COLUMNS[section]
            if role == Qt.ItemDataRole.ToolTipRole and section:
                return "Lowest price in tokens (and cash); double-click or press Enter to add it to your order"
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._products):
            return None
        product = self._products[index.row()]
        col = index.column()
        if role == ProductRole:
            return product
        if col == self.NAME_COLUMN:
            if role == Qt.ItemDataRole.DisplayRole:
                return product.get("name", "")
            if role == Qt.ItemDataRole.ToolTipRole:
                return product.get("description", "")
            return None
        kind = KIND_COLUMNS[col - 1][0]
        offer = offer_of_kind(product, kind)
        if role == Qt.ItemDataRole.DisplayRole:
            if offer is None:
                return ""
            prefix = "from " if offer.get("tiers") and len(offer["tiers"]) > 1 else ""
            tokens = offer_min_tokens(offer)
            cents = self.pricing.cash_cents(tokens) if self.pricing is not None else None
            cash = f" ({format_cents(cents, self.pricing.currency)})" if cents is not None else ""
            return f"✓ {prefix}{tokens:,}{cash}"
        if role == OfferRole:
            return offer
        if role == Qt.ItemDataRole.ToolTipRole and offer is not None:
            return offer_summary(offer)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return "available" if offer else "not available"
        return None


class ProductFilterProxy(QSortFilterProxyModel):
    """Search text, category and "available as" filters over ProductTableModel."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._needle = ""
        self._category_id: Any = None
        self._kind: str | None = None
        self._accepted: list[bool] | None = None
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    def set_search_text(self, text: str) -> None:
        needle = text.strip().lower()
        if needle != self._needle:
            self._change_filter("_needle", needle)

    def set_category(self, category_id: Any) -> None:
        if category_id != self._category_id:
            self._change_filter("_category_id", category_id)

    def set_kind(self, kind: str | None) -> None:
        if kind != self._kind:
            self._change_filter("_kind", kind)

    def _change_filter(self, attribute: str, value) -> None:
        self.beginFilterChange()
        setattr(self, attribute, value)
        self._accepted = None
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def _compute_accepted(self) -> list[bool]:
        # One list comprehension over all rows is far cheaper than doing the
        # work inside 10,000 separate filterAcceptsRow calls.
        src = self.sourceModel()
        needle, category_id, kind = self._needle, self._category_id, self._kind
        accepted = [needle in h for h in src._haystacks] if needle else [True] * len(src._haystacks)
        if category_id is not None or kind is not None:
            for row, product in enumerate(src._products):
                if accepted[row] and (
                        (category_id is not None and product.get("category_id") != category_id)
                        or (kind is not None and offer_of_kind(product, kind) is None)):
                    accepted[row] = False
        return accepted

    def filterAcceptsRow(self, source_row, source_parent):
        try:
            return self._accepted[source_row]
        except (TypeError, IndexError):  # first call after a change of filter or of the source
            self._accepted = self._compute_accepted()
            return self._accepted[source_row]

    def setSourceModel(self, model):
        super().setSourceModel(model)
        model.modelAboutToBeReset.connect(self._forget_accepted)
        model.rowsAboutToBeInserted.connect(self._forget_accepted)
        model.rowsAboutToBeRemoved.connect(self._forget_accepted)
        model.layoutAboutToBeChanged.connect(self._forget_accepted)

    def sort(self, column, order=Qt.SortOrder.AscendingOrder):
        # the source sorts itself; this proxy only filters (see ProductTableModel.sort)
        self.sourceModel().sort(column, order)

    def _forget_accepted(self, *args):
        self._accepted = None
