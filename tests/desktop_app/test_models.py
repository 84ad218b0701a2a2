"""Every item model passes qtmodeltester, and behaves as the screens need. The models are fed
replies captured from the live server and agent (the `captured` fixture), never hand-written
shapes: what they show is what the server and the agent decided."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from desktop_app.api.replies import OfferKind
from desktop_app.library.model import LibraryModel, build_entries
from desktop_app.orders.model import OrderLine, OrderListModel, TierChoicesRole, lines_from_items
from desktop_app.store.models import CategoryModel, ProductFilterProxy, ProductTableModel
from desktop_app.wallet.model import LedgerModel, balance_series, statement_rows


@pytest.fixture(scope="module")
def catalog(captured):
    """The demo store's products by name, as the storefront parses them."""
    return {p.name: p for p in captured.parsed("GET /v1/products")}


def offer(product, kind):
    return product.offer_of_kind(kind)


def test_category_model(qtmodeltester, captured):
    categories = captured.parsed("GET /v1/categories")
    model = CategoryModel()
    model.set_categories(categories)
    qtmodeltester.check(model)
    assert model.rowCount() == len(categories) + 1
    assert model.index(0).data() == "All categories"
    assert [model.index(r).data() for r in range(1, model.rowCount())] == [c.name for c in categories]


def test_product_model_and_filter(qtmodeltester, catalog):
    a, c, d, scan = (catalog[n] for n in ("Software A", "Software C", "Software D", "ScanClean Pro"))
    model = ProductTableModel()
    model.set_products([a, d, c, scan])
    qtmodeltester.check(model)
    # FIG 7: D is available only for rent by processings (its cheapest tier: 100 for 10 tokens)
    row = model.row_of(d.id)
    assert model.index(row, 0).data() == "Software D" and model.index(row, 1).data() == ""
    assert model.index(row, 4).data() == "✓ from 10"
    proxy = ProductFilterProxy()
    proxy.setSourceModel(model)
    qtmodeltester.check(proxy)
    proxy.set_search_text("converter")                 # in D's description only
    assert [proxy.index(r, 0).data() for r in range(proxy.rowCount())] == ["Software D"]
    proxy.set_search_text("")
    proxy.set_category(scan.category_id)
    assert [proxy.index(r, 0).data() for r in range(proxy.rowCount())] == ["ScanClean Pro"]
    proxy.set_category(None)
    proxy.set_kind(OfferKind.PURCHASE)
    assert sorted(proxy.index(r, 0).data() for r in range(proxy.rowCount())) == ["Software A", "Software C"]
    # the filter follows a changed catalog
    model.set_products([d])
    assert proxy.rowCount() == 0
    qtmodeltester.check(proxy)


def test_order_list_fig8_totals(qtmodeltester, catalog):
    a, d = catalog["Software A"], catalog["Software D"]
    model = OrderListModel()
    seen = []
    model.totalsChanged.connect(seen.append)
    model.add_line(OrderLine(a, offer(a, OfferKind.PURCHASE)))
    row = model.add_line(OrderLine(d, offer(d, OfferKind.RENT_PROCESSINGS), installed=True))
    qtmodeltester.check(model)
    assert model.required_tokens() == 110
    model.set_tier(row, 1)                      # 1,000 processings for 80 tokens
    assert model.required_tokens() == 180       # FIG 8's RT
    assert seen[-1] == 180
    assert model.items() == [{"offer_id": offer(a, OfferKind.PURCHASE).id},
                             {"offer_id": offer(d, OfferKind.RENT_PROCESSINGS).id, "quantity": 1000}]
    assert model.installed_product_ids() == [d.id]
    assert not model.line(1).needs_download() and model.line(0).needs_download()
    # the same offer twice is one line
    assert model.add_line(OrderLine(a, offer(a, OfferKind.PURCHASE))) == 0
    assert model.rowCount() == 2
    # bad tier index is refused and changes nothing
    assert not model.setData(model.index(1, OrderListModel.COL_TIER), 7, Qt.ItemDataRole.EditRole)
    assert model.required_tokens() == 180
    model.set_installed(0, True)
    assert model.installed_product_ids() == [a.id, d.id]
    model.remove_rows([0])
    assert model.required_tokens() == 80 and seen[-1] == 80
    qtmodeltester.check(model)


def test_saved_items_rebuild_against_catalog(captured, catalog):
    """The saved list (A, 7 days of B, 1,000 processings of D) against a catalog where B's
    offer is gone: its item is dropped, the others get their tier back."""
    saved = captured.parsed("GET /v1/order-list").items
    shelves = [catalog["Software A"], catalog["Software D"]]

    def find(offer_id):
        return next(((p, o) for p in shelves for o in p.offers if o.id == offer_id), None)

    lines = lines_from_items(saved, find, lambda pid: pid == catalog["Software D"].id)
    assert [(line.product.name, line.tokens, line.installed) for line in lines] == [
        ("Software A", 100, False), ("Software D", 80, True)]


def test_library_shows_what_the_agent_decided(qtmodeltester, captured):
    licenses = captured.parsed("GET /v1/licenses")
    status = captured.parsed("agent status")
    entries = build_entries(licenses, status.licenses, {"1"}, device_id=captured.device_id)
    model = LibraryModel()
    model.set_entries(entries)
    qtmodeltester.check(model)
    by_name = {e.name: e for e in entries}
    a, b, d = by_name["Software A"], by_name["Software B"], by_name["Software D"]
    assert a.fraction is None and a.installed and a.left_text() == "Yours to keep" and not a.warning
    # the agent's remaining and warning, as it said them (960 of D's 1,000 processings spent)
    agent = {lic.license_id: lic for lic in status.licenses}
    for e in entries:
        assert (e.remaining, e.warning) == (agent[e.license_id].remaining, agent[e.license_id].warning)
    assert d.remaining == 40 and d.total == 1000 and d.fraction == pytest.approx(0.04) and d.warning
    assert d.left_text() == "40 of 1,000 processings left"
    row = model.row_of_product(d.product_id)
    assert model.index(row, LibraryModel.COL_LEFT).data() == "40 of 1,000 processings left — running low"
    raw_d = next(lic for lic in captured.data("agent status")["licenses"] if lic["product_name"] == "Software D")
    assert d.history == tuple((day["date"], day["used"]) for day in raw_d["history"]) and d.history[-1][1] == 960
    assert 0.99 < b.fraction <= 1 and b.left_text().startswith("6 d 23 h") and not b.warning


def test_library_entry_off_this_computer(captured):
    """A license the agent does not hold here: bound to the user's other computer, or not
    installed yet. Nothing is worked out for it: what is left is the agent's to say."""
    licenses = captured.parsed("GET /v1/licenses")
    d = next(lic for lic in licenses if lic.product_name == "Software D")
    (entry,) = build_entries([d], [], set(), device_id="a" * 32)
    assert entry.left_text() == "On your other computer “capture box”"
    assert entry.remaining is None and not entry.warning and entry.total == 1000
    (entry,) = build_entries([d], [], set(), device_id=captured.device_id)
    assert entry.left_text().startswith("Unknown") and entry.fraction is None


def test_library_lists_a_license_only_the_agent_holds(captured):
    status = captured.parsed("agent status")
    entries = build_entries([], status.licenses, set())
    assert [e.name for e in entries] == [lic.product_name for lic in status.licenses]
    assert all(e.license is None and e.agent_known for e in entries)


def test_ledger_model_shows_the_servers_balances(qtmodeltester, captured):
    ledger = captured.parsed("GET /v1/ledger")
    model = LedgerModel()
    model.set_ledger(ledger)
    qtmodeltester.check(model)
    rows = statement_rows(ledger)
    assert model.rowCount() == len(rows) == len([e for e in ledger.entries if e.tokens])
    # newest first, as the server sent it; the balance column is the server's balance_after
    assert [model.index(r, 3).data() for r in range(model.rowCount())] == \
        [f"{line.balance_after:,} tokens" for line in rows]
    assert model.index(0, 3).data() == f"{ledger.available_tokens:,} tokens"
    assert [y for _, y in balance_series(ledger)] == [float(e.balance_after) for e in reversed(ledger.entries)]


def test_statement_shows_an_order_once_with_cash(qtmodeltester, captured):
    """The server's hold takes the tokens and its posting moves none: one row, not two.
    Tokens and Balance show the cash equivalent (FIG 17)."""
    from desktop_app.money import Pricing
    ledger = captured.parsed("GET /v1/ledger")
    model = LedgerModel()
    model.set_pricing(Pricing(10))
    model.set_ledger(ledger)
    qtmodeltester.check(model)
    memos = [model.index(r, 1).data() for r in range(model.rowCount())]
    hold = next(r for r, memo in enumerate(memos) if memo.endswith("Software A, Software B, Software D"))
    assert any(e.kind == "spend" and e.tokens == 0 for e in ledger.entries)       # the order's posting ...
    assert not any(line.kind == "spend" for line in statement_rows(ledger))       # ... is not a row
    assert model.index(hold, 2).data() == "-195 tokens (-$19.50)"
    assert model.index(hold, 3).data() == "305 tokens ($30.50)"
    grant = memos.index("standard tokens from the vendor")
    assert model.index(grant, 2).data() == "+500 tokens ($50.00)"


def test_sorting_is_done_by_the_source_and_keeps_the_filter(qtmodeltester, catalog):
    model = ProductTableModel()
    model.set_products([catalog["Software D"], catalog["Software C"], catalog["Software A"]])
    assert [model.index(r, 0).data() for r in range(3)] == ["Software A", "Software C", "Software D"]
    proxy = ProductFilterProxy()
    proxy.setSourceModel(model)
    proxy.set_kind(OfferKind.PURCHASE)
    proxy.sort(1, Qt.SortOrder.DescendingOrder)      # by purchase price, dearest first (C 200, A 100)
    assert [proxy.index(r, 0).data() for r in range(proxy.rowCount())] == ["Software C", "Software A"]
    proxy.sort(0, Qt.SortOrder.DescendingOrder)
    assert [proxy.index(r, 0).data() for r in range(proxy.rowCount())] == ["Software C", "Software A"]
    proxy.sort(1, Qt.SortOrder.AscendingOrder)
    assert [proxy.index(r, 0).data() for r in range(proxy.rowCount())] == ["Software A", "Software C"]
    qtmodeltester.check(proxy)


def test_order_lines_show_cash_equivalents(catalog):
    from desktop_app.money import Pricing
    a, d = catalog["Software A"], catalog["Software D"]
    model = OrderListModel()
    model.add_line(OrderLine(a, offer(a, OfferKind.PURCHASE)))
    assert model.index(0, OrderListModel.COL_TOKENS).data() == "100"
    model.pricing = Pricing(10)          # FIG 17: 10 cents a token
    assert model.index(0, OrderListModel.COL_TOKENS).data() == "100 ($10.00)"
    assert Pricing(10).tokens_text(1) == "1 token ($0.10)" and Pricing().tokens_text(5) == "5 tokens"
    # the tier choices (the combo box in the Quantity column) are priced in cash too
    row = model.add_line(OrderLine(d, offer(d, OfferKind.RENT_PROCESSINGS)))
    choices = model.index(row, OrderListModel.COL_TIER).data(TierChoicesRole)
    assert choices[1] == "1,000 processings — 80 tokens ($8.00)"


def test_store_page_keeps_the_product_through_filtering(qtbot, tmp_path, monkeypatch, captured, catalog):
    monkeypatch.setenv("TOKENRENT_HOME", str(tmp_path))
    from desktop_app.paths import app_paths
    from desktop_app.settings.config import Settings
    from desktop_app.state import AppState
    from desktop_app.store.page import StorePage
    state = AppState(app_paths().ensure(), Settings(), "http://127.0.0.1:9")
    state.categories = captured.parsed("GET /v1/categories")
    state.products = [catalog["Software A"], catalog["Software C"], catalog["Software D"]]
    page = StorePage(state)
    qtbot.addWidget(page)
    page.reload()
    assert page.show_product(catalog["Software D"].id) and page.details.name.text() == "Software D"
    page.search.setText("software")                  # still listed: still selected
    assert page.table.currentIndex().data() == "Software D"
    page.search.setText("clean-up")                  # filtered out: its details stay on show
    assert page.proxy.rowCount() == 1 and page.details.name.text() == "Software D"
    page.search.setText("")
    assert page.table.currentIndex().data() == "Software D"
    page.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
    assert [page.proxy.index(r, 0).data() for r in range(3)] == ["Software D", "Software C", "Software A"]
    assert page.table.currentIndex().data() == "Software D"


def test_grid_double_click_and_tier_editor(qtbot, tmp_path, monkeypatch, catalog):
    """FIG 7: activating a ticked cell adds that offer; FIG 8: the tier combo box edits the line."""
    monkeypatch.setenv("TOKENRENT_HOME", str(tmp_path))
    from desktop_app.orders.page import OrderPage, TierDelegate
    from desktop_app.paths import app_paths
    from desktop_app.settings.config import Settings
    from desktop_app.state import AppState
    from desktop_app.store.page import StorePage
    state = AppState(app_paths().ensure(), Settings(), "http://127.0.0.1:9")
    state.products = [catalog["Software A"], catalog["Software C"], catalog["Software D"]]
    store, orders = StorePage(state), OrderPage(state)
    qtbot.addWidget(store)
    qtbot.addWidget(orders)
    store.addToOrder.connect(orders.add)
    store.reload()
    d_row = next(r for r in range(store.proxy.rowCount()) if store.proxy.index(r, 0).data() == "Software D")
    store.table.activated.emit(store.proxy.index(d_row, 4))      # the "rent by processings" cell
    store.table.activated.emit(store.proxy.index(d_row, 1))      # not available: nothing happens
    assert orders.model.rowCount() == 1 and orders.model.line(0).kind == "rent_processings"
    index = orders.model.index(0, orders.model.COL_TIER)
    delegate = orders.table.itemDelegateForColumn(orders.model.COL_TIER)
    assert isinstance(delegate, TierDelegate)
    editor = delegate.createEditor(orders.table.viewport(), None, index)
    delegate.setEditorData(editor, index)
    assert editor.count() == 3 and editor.currentIndex() == 0
    editor.setCurrentIndex(1)
    delegate.setModelData(editor, orders.model, index)
    assert orders.labels["rt"].text() == "80 tokens"          # no token price known here: no cash part
    # the Quantity column is wide enough for the open combo box's longest choice
    from PySide6.QtWidgets import QStyleOptionViewItem
    option = QStyleOptionViewItem()
    option.initFrom(orders.table)
    widest = max(option.fontMetrics.horizontalAdvance(c) for c in index.data(TierChoicesRole))
    assert delegate.sizeHint(option, index).width() > widest


def test_the_session_token_only_goes_to_the_store_server():
    from desktop_app.library.downloads import same_origin
    assert same_origin("http://127.0.0.1:8700/v1/products/1/download", "http://127.0.0.1:8700")
    assert not same_origin("http://127.0.0.1:8701/v1/products/1/download", "http://127.0.0.1:8700")
    assert not same_origin("https://cdn.example.com/a.trpkg", "https://store.example.com")
    assert not same_origin("http://store.example.com/a", "https://store.example.com")


def test_store_download_links_go_to_the_server_in_use():
    from desktop_app.library.downloads import store_path
    assert store_path("http://public.example:8700/v1/products/4/download") == "/v1/products/4/download"
    assert store_path("/v1/products/4/download?v=2") == "/v1/products/4/download?v=2"
    assert store_path("https://cdn.example.com/files/a.trpkg") == "https://cdn.example.com/files/a.trpkg"


def test_category_names_are_not_clipped(qtbot, tmp_path, monkeypatch, captured, catalog):
    """FIG 6: the list is as wide as a long name; a longer one wraps; no sideways scrolling."""
    monkeypatch.setenv("TOKENRENT_HOME", str(tmp_path))
    from desktop_app.paths import app_paths
    from desktop_app.settings.config import Settings
    from desktop_app.state import AppState
    from desktop_app.store.page import StorePage
    state = AppState(app_paths().ensure(), Settings(), "http://127.0.0.1:9")
    state.categories = captured.parsed("GET /v1/categories")     # the demo's long names
    state.products = [catalog["Software A"]]
    store = StorePage(state)
    qtbot.addWidget(store)
    store.resize(1140, 700)
    store.show()
    store.reload()
    qtbot.waitExposed(store)
    view = store.category_view
    assert view.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    assert view.viewport().width() >= view.fontMetrics().horizontalAdvance("Scanned Document Enhancement")
    row = {c.name: n + 1 for n, c in enumerate(state.categories)}
    one_line = view.visualRect(store.categories.index(row["Computer Games"])).height()
    edms = store.categories.index(row["Engineering Document Management Systems (EDMS)"])
    assert view.visualRect(edms).height() > one_line       # wrapped, not cut
