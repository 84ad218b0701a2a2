"""Store: categories (FIG 6), the availability grid (FIG 7), product details, search and filter."""
from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QGroupBox, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QListView, QPushButton, QSplitter, QTableView, QVBoxLayout,
                               QWidget)

from desktop_app.api.replies import Offer, OfferKind, OrderPayment, Product
from desktop_app.widgets.common import Banner
from desktop_app.store.models import (KIND_COLUMNS, KIND_LABELS, CategoryModel, IdRole,
                                      OfferRole, ProductFilterProxy, ProductRole, ProductTableModel)


class ProductDetails(QGroupBox):
    """One product: description and every offer with its tiers, priced in tokens and cash."""

    addOffer = Signal(object, object, int)   # product, offer, tier index

    def __init__(self, state, parent=None):
        super().__init__("Product", parent)
        self.state = state
        self.product: Product | None = None
        self.pricing_override = None      # another member's store: its MemberPricing (desktop_app.mall.rates)
        self.name = QLabel(objectName="product_name")
        self.name.setStyleSheet("font-size:16pt;font-weight:600;")
        self.description = QLabel(wordWrap=True)
        self.held = QLabel(wordWrap=True, objectName="product_held")
        self.held.setStyleSheet("color:#14462b;")
        self.pays_with = QLabel(wordWrap=True, objectName="product_pays_with")   # issue 12: the store's open_kinds
        self.pays_with.hide()
        self._pays_seq = 0
        self.offers_box = QVBoxLayout()
        layout = QVBoxLayout(self)
        layout.addWidget(self.name)
        layout.addWidget(self.description)
        layout.addWidget(self.held)
        layout.addWidget(self.pays_with)
        layout.addLayout(self.offers_box)
        layout.addStretch(1)
        self.show_product(None)

    def show_product(self, product: Product | None) -> None:
        self.product = product
        while self.offers_box.count():
            item = self.offers_box.takeAt(0)
            if item.widget():
                old = item.widget()
                old.hide()              # gone at once, deleted when Qt gets to it
                old.setParent(None)
                old.deleteLater()
        self._pays_seq += 1                # an answer for the last product is not shown for this one
        self.pays_with.hide()
        if product is None:
            self.held.hide()
            self.name.setText("Choose a product")
            self.description.setText("Pick a product in the list to see how you can buy or rent it.")
            return
        self.name.setText(product.name)
        self.description.setText(product.description)
        self.update_held()
        self.ask_pays_with(product)
        for offer in product.offers:
            if offer.kind == OfferKind.CONVERT:
                continue  # conversion starts from a license in the Library
            self.offers_box.addWidget(self._offer_row(product, offer))

    def update_held(self) -> None:
        """What the user already holds of this product (from the library)."""
        product = self.product
        # the licenses of the store on show: every store numbers its products from 1
        member = getattr(self.pricing_override, "member", None)
        issuer = member.member_id if member is not None else None
        held = [e for e in self.state.entries if product and e.product_id == str(product.id) and e.issuer == issuer]
        if not held:
            self.held.hide()
            return
        more = ". Extend or convert it in the Library." if any(e.kind != "permanent" for e in held) else "."
        self.held.setText("You hold this: " + "; ".join(e.left_text() for e in held) + more)
        self.held.show()

    def ask_pays_with(self, product: Product) -> None:
        """"Pays with": the kinds of open tokens that can pay this product at its store, as that
        store's quote says (``open_kinds``; only in a mall and signed in)."""
        state = self.state
        offer = next((o for o in product.offers if o.kind != OfferKind.CONVERT), None)
        if offer is None or state.mall.mall is None or not state.signed_in:
            return
        item: dict = {"offer_id": offer.id}
        if offer.tiers:
            item["quantity"] = offer.tiers[0].quantity
        seq, member = self._pays_seq, getattr(self.pricing_override, "member", None)
        sessions, api = state.mall.sessions, state.api

        def ask():
            if member is None:
                return api.quote([item], OrderPayment.AUTO)
            return sessions.call(member, lambda c: c.quote([item], OrderPayment.AUTO))

        def done(quote) -> None:
            kinds = quote.items[0].open_kinds if quote.items else []
            if seq != self._pays_seq or not kinds:
                return
            from desktop_app.open.model import kinds_text
            self.pays_with.setText(f"Pays with this store's tokens, or open tokens: {kinds_text(kinds)}")
            self.pays_with.show()

        state.call(ask, done, lambda _e: None)      # a store without open tokens: nothing to say

    def _offer_row(self, product: Product, offer: Offer) -> QWidget:
        row = QWidget()
        outer = QVBoxLayout(row)
        outer.setContentsMargins(0, 4, 0, 4)
        label = QLabel(f"<b>{KIND_LABELS[offer.kind]}</b>")
        outer.addWidget(label)
        box = QHBoxLayout()
        outer.addLayout(box)
        pricing = self.pricing_override or self.state.pricing
        tiers = offer.tiers
        combo = None
        if tiers:
            # the choices on a line of their own, as wide as their text: never clipped
            combo = QComboBox()
            combo.setObjectName(f"tiers_{offer.id}")
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            unit = offer.unit
            text = getattr(pricing, "choice_text", pricing.tokens_text)   # another member's: shorter
            for t in tiers:
                combo.addItem(f"{t.quantity:,} {unit} — {text(t.tokens)}")
            combo.setToolTip(pricing.tooltip())
            label.setBuddy(combo)
            outer.insertWidget(1, combo)
            box.addStretch(1)
        else:
            price = QLabel(pricing.tokens_text(offer.price_tokens), objectName=f"price_{offer.id}")
            price.setToolTip(pricing.tooltip())
            price.setWordWrap(True)        # another member's price has three forms: wrap, never clip
            box.addWidget(price, 1)
        button = QPushButton("Add to order")
        button.setObjectName(f"add_{offer.id}")
        button.setAccessibleName(f"Add {product.name} {KIND_LABELS[offer.kind]} to order")
        button.clicked.connect(lambda: self.addOffer.emit(product, offer, combo.currentIndex() if combo else 0))
        box.addWidget(button)
        return row


class StorePage(QWidget):
    addToOrder = Signal(object, object, int)
    addAtMember = Signal(object, object, object, int)   # MallMember, product, offer, tier: buy at that store

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.browsed = None                 # another member's store on show (desktop_app.mall.state.BrowsedStore)
        self.categories = CategoryModel(self)
        self.products = ProductTableModel(self)
        self.proxy = ProductFilterProxy(self)
        self.proxy.setSourceModel(self.products)

        self.search = QLineEdit(objectName="store_search")
        self.search.setPlaceholderText("Search products (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.proxy.set_search_text)
        QShortcut(QKeySequence.StandardKey.Find, self, activated=self.search.setFocus)
        self.kind_filter = QComboBox(objectName="store_kind")
        self.kind_filter.addItem("Any way to get it", None)
        for kind, label in KIND_COLUMNS:
            self.kind_filter.addItem(label, kind)
        self.kind_filter.currentIndexChanged.connect(
            lambda _: self.proxy.set_kind(self.kind_filter.currentData()))

        self.category_view = QListView(objectName="store_categories")
        self.category_view.setModel(self.categories)
        self.category_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # as wide as the longest name up to a limit (see reload); longer names wrap, never scroll
        self.category_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.category_view.setWordWrap(True)
        self.category_view.setResizeMode(QListView.ResizeMode.Adjust)
        self.category_view.selectionModel().currentChanged.connect(
            lambda cur, _prev: self.proxy.set_category(cur.data(IdRole)))

        self.table = QTableView(objectName="store_products")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)   # header clicks sort the source model (see ProductFilterProxy.sort)
        self.table.horizontalHeader().setSortIndicator(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        # Column widths are set once per catalog (reload), not on every keystroke: sizing to
        # contents asks every visible cell for its data again after each filter change.
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(90)
        header.setResizeContentsPrecision(0)
        self.table.setWordWrap(False)
        self.table.selectionModel().currentChanged.connect(self._current_changed)
        self.proxy.modelReset.connect(self._filter_reset)
        self.table.activated.connect(self._activated)

        self.details = ProductDetails(state)
        self.details.setMinimumWidth(280)
        self.details.addOffer.connect(self._add_offer)

        # browsing another member of the mall: say whose store this is, and the way back
        self.browse_banner = Banner(objectName="store_browse_banner")
        self.home_button = QPushButton(self.tr("Back to &your store"), objectName="store_home")
        self.home_button.clicked.connect(self.browse_home)
        self.home_button.hide()
        browse_bar = QHBoxLayout()
        browse_bar.addWidget(self.browse_banner, 1)
        browse_bar.addWidget(self.home_button)

        filters = QHBoxLayout()
        filters.addWidget(self.search, 2)
        filters.addWidget(self.kind_filter, 1)
        center = QWidget()
        cl = QVBoxLayout(center)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addLayout(filters)
        cl.addWidget(self.table)
        split = QSplitter()
        split.addWidget(self.category_view)
        split.addWidget(center)
        split.addWidget(self.details)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setStretchFactor(2, 0)
        split.setSizes([170, 770, 300])
        self.category_view.setMinimumWidth(120)
        self.split = split
        layout = QVBoxLayout(self)
        layout.addLayout(browse_bar)
        layout.addWidget(split)
        self.setTabOrder(self.search, self.kind_filter)
        self.setTabOrder(self.kind_filter, self.category_view)
        self.setTabOrder(self.category_view, self.table)

        state.catalogChanged.connect(self.reload)
        state.pricingChanged.connect(self._pricing_changed)
        state.libraryChanged.connect(self.details.update_held)

    def _pricing_changed(self, pricing) -> None:
        if self.browsed is not None:
            return                     # the home store's prices; another member's are on show
        self.products.set_pricing(pricing)
        self.details.show_product(self.details.product)

    # -- another member's store ------------------------------------------------------
    def browse_store(self, browsed) -> None:
        """Show another member's catalog, its prices in its tokens, cash and home tokens."""
        self.browsed = browsed
        self.details.pricing_override = browsed.pricing
        self.products.set_pricing(browsed.pricing)
        self.details.show_product(None)
        member = browsed.member
        self.browse_banner.show_message(self.tr(
            "You are browsing {name}. Prices are in {token}, with their cash value and their worth in "
            "your {home} at today's rate (rounded up).").format(
            name=member.name, token=member.token.name, home=browsed.pricing.home.token.name), "info")
        self.browse_banner.setToolTip(browsed.pricing.tooltip())
        self.home_button.show()
        self._set_cell_lines(getattr(browsed.pricing, "CELL_LINES", 1))
        self.reload()

    def browse_home(self) -> None:
        if self.browsed is None:
            return
        self.browsed = None
        self.details.pricing_override = None
        self.products.set_pricing(self.state.pricing)
        self.details.show_product(None)
        self.browse_banner.clear_message()
        self.home_button.hide()
        self._set_cell_lines(1)
        self.reload()

    def _set_cell_lines(self, lines: int) -> None:
        """Rows as high as the prices' lines (another member's prices take two)."""
        header = self.table.verticalHeader()
        if not hasattr(self, "_one_line_height"):
            self._one_line_height = header.defaultSectionSize()
        extra = self.table.fontMetrics().lineSpacing() * (lines - 1)
        header.setDefaultSectionSize(self._one_line_height + extra)

    def _add_offer(self, product, offer, tier: int) -> None:
        if self.browsed is not None:
            self.addAtMember.emit(self.browsed.member, product, offer, tier)
        else:
            self.addToOrder.emit(product, offer, tier)

    def reload(self) -> None:
        current = self.details.product
        source = self.browsed if self.browsed is not None else self.state
        self.categories.set_categories(source.categories)
        self.products.set_products(source.products)
        self.category_view.setCurrentIndex(self.categories.index(0))
        self._fit_categories()
        for column in range(1, self.products.columnCount()):
            self.table.resizeColumnToContents(column)
        if current is not None:
            self.show_product(current.id)

    MAX_CATEGORY_WIDTH = 215

    def _fit_categories(self) -> None:
        """The category list as wide as its longest name (up to a limit), the grid gives way."""
        view = self.category_view
        wanted = view.sizeHintForColumn(0) + 2 * view.frameWidth() + view.verticalScrollBar().sizeHint().width() + 8
        wanted = max(120, min(wanted, self.MAX_CATEGORY_WIDTH))
        view.setMinimumWidth(wanted)
        sizes = self.split.sizes()
        if sum(sizes) and sizes[0] < wanted:
            sizes[1] = max(200, sizes[1] - (wanted - sizes[0]))
            sizes[0] = wanted
            self.split.setSizes(sizes)

    def _current_changed(self, current, _previous) -> None:
        # an invalid current (the product was filtered out) keeps its details on show
        if current.isValid():
            self.details.show_product(current.data(ProductRole))

    def _filter_reset(self) -> None:
        """After a new filter: select the product on show again if it is still in the list."""
        product = self.details.product
        if product is None:
            return
        row = self.products.row_of(product.id)
        if row >= 0:
            index = self.proxy.mapFromSource(self.products.index(row, 0))
            if index.isValid():
                self.table.selectionModel().setCurrentIndex(
                    index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)

    def _activated(self, index) -> None:
        """Enter / double click on an availability box (FIG 7) adds that offer."""
        offer = index.data(OfferRole)
        product = index.data(ProductRole)
        if offer is not None and product is not None:
            self._add_offer(product, offer, 0)

    def show_product(self, product_id) -> bool:
        """Select a product (tokenrent --product ID). Clears filters that would hide it."""
        row = self.products.row_of(product_id)
        if row < 0:
            return False
        self.details.show_product(self.products.product(row))
        self.search.clear()
        self.kind_filter.setCurrentIndex(0)
        self.category_view.setCurrentIndex(self.categories.index(0))
        proxy_index = self.proxy.mapFromSource(self.products.index(row, 0))
        self.table.setCurrentIndex(proxy_index)
        self.table.scrollTo(proxy_index)
        return True
