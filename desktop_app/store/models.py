"""Catalog item models (FIG 6 categories, FIG 7 availability grid).

Models hold the server's typed replies (Category, Product, Offer); widgets only see them
through Qt's model/view API.
"""
from __future__ import annotations

from typing import Any

from desktop_app.api.replies import Category, Offer, OfferKind, Product
from PySide6.QtCore import QAbstractListModel, QAbstractProxyModel, QAbstractTableModel, QModelIndex, Qt

# FIG 7's column headings: offer kind -> heading
KIND_COLUMNS = [
    (OfferKind.PURCHASE, "Purchase"),
    (OfferKind.RENT_TIME, "Rent by time"),
    (OfferKind.RENT_USES, "Rent by uses"),
    (OfferKind.RENT_PROCESSINGS, "Rent by processings"),
]
KIND_LABELS = {
    OfferKind.PURCHASE: "Purchase",
    OfferKind.RENT_TIME: "Rent by time",
    OfferKind.RENT_USES: "Rent by uses",
    OfferKind.RENT_PROCESSINGS: "Rent by processings",
    OfferKind.CONVERT: "Convert to permanent",
}

ProductRole = Qt.ItemDataRole.UserRole + 1
OfferRole = Qt.ItemDataRole.UserRole + 2
IdRole = Qt.ItemDataRole.UserRole + 3


def offer_summary(offer: Offer) -> str:
    if offer.tiers:
        unit = offer.unit
        return ", ".join(f"{t.quantity:,} {unit}: {t.tokens}" for t in offer.tiers)
    return f"{offer.price_tokens}"


class CategoryModel(QAbstractListModel):
    """FIG 6: the software categories. Row 0 is "All categories"."""

    ALL = None

    def __init__(self, parent=None):
        super().__init__(parent)
        self._categories: list[Category] = []

    def set_categories(self, categories: list[Category]) -> None:
        self.beginResetModel()
        self._categories = list(categories)
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self._categories) + 1

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() <= len(self._categories):
            return None
        cat = None if index.row() == 0 else self._categories[index.row() - 1]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return "All categories" if cat is None else cat.name
        if role == IdRole:
            return None if cat is None else cat.id
        return None


class ProductTableModel(QAbstractTableModel):
    """FIG 7: one row per product; a column per way to get it."""

    NAME_COLUMN = 0
    COLUMNS = ["Product"] + [label.replace("Rent by ", "Rent by\n") for _, label in KIND_COLUMNS]

    def __init__(self, parent=None):
        super().__init__(parent)
        self._products: list[Product] = []
        self._haystacks: list[str] = []   # lower-cased name + description, for fast filtering
        self.pricing = None               # desktop_app.money.Pricing: cash equivalents (FIG 17)

    def set_pricing(self, pricing) -> None:
        self.pricing = pricing
        if self._products:
            self.dataChanged.emit(self.index(0, 1), self.index(len(self._products) - 1, len(self.COLUMNS) - 1))

    def set_products(self, products: list[Product]) -> None:
        self.beginResetModel()
        self._products = sorted(products, key=self._sort_key(0))
        self._haystacks = [f"{p.name}\n{p.description}".lower() for p in self._products]
        self.endResetModel()

    @staticmethod
    def _sort_key(column: int):
        if column <= 0:
            return lambda p: p.name.lower()
        kind = KIND_COLUMNS[column - 1][0]

        def key(p):
            offer = p.offer_of_kind(kind)
            return (offer is None, offer.price_tokens if offer else 0, p.name.lower())
        return key

    def sort(self, column, order=Qt.SortOrder.AscendingOrder):
        """Sorting here, in one Python sort, is far cheaper than a sorting proxy calling
        data() for every comparison (10,000 rows)."""
        self.layoutAboutToBeChanged.emit()
        old = {id(p): row for row, p in enumerate(self._products)}
        self._products.sort(key=self._sort_key(column), reverse=order == Qt.SortOrder.DescendingOrder)
        self._haystacks = [f"{p.name}\n{p.description}".lower() for p in self._products]
        new_rows = [old[id(p)] for p in self._products]
        from_list, to_list = [], []
        for new_row, old_row in enumerate(new_rows):
            if new_row != old_row:
                for col in range(self.columnCount()):
                    from_list.append(self.index(old_row, col))
                    to_list.append(self.index(new_row, col))
        self.changePersistentIndexList(from_list, to_list)
        self.layoutChanged.emit()

    def products(self) -> list[Product]:
        return list(self._products)

    def product(self, row: int) -> Product:
        return self._products[row]

    def row_of(self, product_id: Any) -> int:
        for row, p in enumerate(self._products):
            if str(p.id) == str(product_id):
                return row
        return -1

    def product_by_id(self, product_id: Any) -> Product | None:
        for p in self._products:
            if str(p.id) == str(product_id):
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
        return self.cell(index.row(), index.column(), role)

    def cell(self, row: int, col: int, role) -> Any:
        """data() by row and column (the filter proxy calls this without making indexes)."""
        product = self._products[row]
        if role == ProductRole:
            return product
        if col == self.NAME_COLUMN:
            if role == Qt.ItemDataRole.DisplayRole:
                return product.name
            if role == Qt.ItemDataRole.ToolTipRole:
                return product.description
            return None
        kind = KIND_COLUMNS[col - 1][0]
        offer = product.offer_of_kind(kind)
        if role == Qt.ItemDataRole.DisplayRole:
            if offer is None:
                return ""
            prefix = "from " if len(offer.tiers) > 1 else ""
            tokens = offer.price_tokens
            return f"✓ {prefix}{self.pricing.cell_text(tokens) if self.pricing is not None else f'{tokens:,}'}"
        if role == OfferRole:
            return offer
        if role == Qt.ItemDataRole.ToolTipRole and offer is not None:
            how = self.pricing.tooltip() if self.pricing is not None else ""
            return offer_summary(offer) + (f"\n{how}" if how else "")
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return "available" if offer else "not available"
        return None


class ProductFilterProxy(QAbstractProxyModel):
    """Search text, category and "available as" filters over ProductTableModel.

    A flat filtering proxy: the accepted source rows are one Python list, recomputed in a
    single list comprehension per change, and the view is told with one reset. With
    10,000 products a QSortFilterProxyModel spent most of a keystroke mapping rows and
    sending the view thousands of small insert/remove ranges.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self._needle = ""
        self._category_id: Any = None
        self._kind: str | None = None
        self._rows: list[int] = []               # proxy row -> source row
        self._proxy_row: dict[int, int] | None = None   # source row -> proxy row, built on demand

    # -- filters ------------------------------------------------------------------
    def set_search_text(self, text: str) -> None:
        needle = text.strip().lower()
        if needle != self._needle:
            self._needle = needle
            self._refilter()

    def set_category(self, category_id: Any) -> None:
        if category_id != self._category_id:
            self._category_id = category_id
            self._refilter()

    def set_kind(self, kind: str | None) -> None:
        if kind != self._kind:
            self._kind = kind
            self._refilter()

    def _accepted_rows(self) -> list[int]:
        src = self.sourceModel()
        if src is None:
            return []
        needle, category_id, kind = self._needle, self._category_id, self._kind
        rows = [r for r, h in enumerate(src._haystacks) if needle in h] if needle else \
            list(range(len(src._haystacks)))
        if category_id is not None or kind is not None:
            products = src._products
            rows = [r for r in rows
                    if (category_id is None or products[r].category_id == category_id)
                    and (kind is None or products[r].offer_of_kind(kind) is not None)]
        return rows

    def _refilter(self) -> None:
        self.beginResetModel()
        self._rows = self._accepted_rows()
        self._proxy_row = None
        self.endResetModel()

    # -- wiring to the source --------------------------------------------------------
    def setSourceModel(self, model):
        self.beginResetModel()
        old = self.sourceModel()
        if old is not None:
            for sig in (old.modelReset, old.layoutChanged, old.rowsInserted, old.rowsRemoved):
                sig.disconnect(self._source_changed)
            old.dataChanged.disconnect(self._source_data_changed)
        super().setSourceModel(model)
        for sig in (model.modelReset, model.layoutChanged, model.rowsInserted, model.rowsRemoved):
            sig.connect(self._source_changed)
        model.dataChanged.connect(self._source_data_changed)
        self._rows = self._accepted_rows()
        self._proxy_row = None
        self.endResetModel()

    def _source_changed(self, *args) -> None:
        self._refilter()

    def _source_data_changed(self, top_left, bottom_right, roles=()) -> None:
        if self._rows:
            self.dataChanged.emit(self.index(0, top_left.column()),
                                  self.index(len(self._rows) - 1, bottom_right.column()), roles)

    def sort(self, column, order=Qt.SortOrder.AscendingOrder):
        # the source sorts itself in one Python sort (see ProductTableModel.sort)
        self.sourceModel().sort(column, order)

    # -- QAbstractProxyModel -------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=QModelIndex()):
        src = self.sourceModel()
        return 0 if parent.isValid() or src is None else src.columnCount()

    def index(self, row, column, parent=QModelIndex()):
        if parent.isValid() or not (0 <= row < len(self._rows)) or not (0 <= column < self.columnCount()):
            return QModelIndex()
        return self.createIndex(row, column)

    def parent(self, index=QModelIndex()):
        return QModelIndex()

    def hasChildren(self, parent=QModelIndex()):
        return not parent.isValid() and bool(self._rows)

    def mapToSource(self, proxy_index):
        if not proxy_index.isValid() or proxy_index.model() is not self \
                or not 0 <= proxy_index.row() < len(self._rows):
            return QModelIndex()
        return self.sourceModel().index(self._rows[proxy_index.row()], proxy_index.column())

    def mapFromSource(self, source_index):
        if not source_index.isValid():
            return QModelIndex()
        if self._proxy_row is None:
            self._proxy_row = {src: row for row, src in enumerate(self._rows)}
        row = self._proxy_row.get(source_index.row())
        return QModelIndex() if row is None else self.createIndex(row, source_index.column())

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        row = index.row()
        if not index.isValid() or not 0 <= row < len(self._rows):
            return None
        return self.sourceModel().cell(self._rows[row], index.column(), role)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        src = self.sourceModel()
        if src is None:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return src.headerData(section, orientation, role)
        return section + 1 if role == Qt.ItemDataRole.DisplayRole else None

    def flags(self, index):
        return self.sourceModel().flags(self.mapToSource(index)) if index.isValid() else Qt.ItemFlag.NoItemFlags
