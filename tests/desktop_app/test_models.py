"""Every item model passes qtmodeltester, and behaves as the screens need."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from PySide6.QtCore import Qt

from desktop_app.library.model import LibraryModel, build_entries
from desktop_app.orders.model import OrderLine, OrderListModel, TierChoicesRole, lines_from_items
from desktop_app.store.models import CategoryModel, ProductFilterProxy, ProductTableModel
from desktop_app.wallet.model import LedgerModel, balance_series, normalize_ledger

SOFTWARE_A = {"id": 1, "name": "Software A", "category_id": 10, "description": "A word processor",
              "offers": [{"id": 11, "kind": "purchase", "tokens": 100}]}
SOFTWARE_D = {"id": 4, "name": "Software D", "category_id": 10, "description": "Batch image filter",
              "offers": [{"id": 41, "kind": "rent_processings",
                          "tiers": [{"quantity": 100, "tokens": 10}, {"quantity": 1000, "tokens": 80}]}]}
SOFTWARE_C = {"id": 3, "name": "Software C", "category_id": 20, "description": "Spreadsheet",
              "offers": [{"id": 31, "kind": "purchase", "tokens": 60},
                         {"id": 32, "kind": "rent_uses", "tiers": [{"quantity": 10, "tokens": 5}]},
                         {"id": 33, "kind": "convert", "tokens": 50}]}


def test_category_model(qtmodeltester):
    model = CategoryModel()
    model.set_categories([{"id": 10, "name": "Office"}, {"id": 20, "name": "Graphics"}])
    qtmodeltester.check(model)
    assert model.rowCount() == 3
    assert model.index(0).data() == "All categories"
    assert model.index(2).data() == "Graphics"


def test_product_model_and_filter(qtmodeltester):
    model = ProductTableModel()
    model.set_products([SOFTWARE_A, SOFTWARE_D, SOFTWARE_C])
    qtmodeltester.check(model)
    # FIG 7: D is available only for rent by processings
    assert model.index(2, 0).data() == "Software D" and model.index(2, 1).data() == ""
    assert model.index(2, 4).data() == "✓ from 10"
    proxy = ProductFilterProxy()
    proxy.setSourceModel(model)
    qtmodeltester.check(proxy)
    proxy.set_search_text("image")
    assert [proxy.index(r, 0).data() for r in range(proxy.rowCount())] == ["Software D"]
    proxy.set_search_text("")
    proxy.set_category(20)
    assert [proxy.index(r, 0).data() for r in range(proxy.rowCount())] == ["Software C"]
    proxy.set_category(None)
    proxy.set_kind("purchase")
    assert sorted(proxy.index(r, 0).data() for r in range(proxy.rowCount())) == ["Software A", "Software C"]
    # the filter follows a changed catalog
    model.set_products([SOFTWARE_D])
    assert proxy.rowCount() == 0
    qtmodeltester.check(proxy)


def test_order_list_fig8_totals(qtmodeltester):
    model = OrderListModel()
    seen = []
    model.totalsChanged.connect(seen.append)
    model.add_line(OrderLine(SOFTWARE_A, SOFTWARE_A["offers"][0]))
    row = model.add_line(OrderLine(SOFTWARE_D, SOFTWARE_D["offers"][0], installed=True))
    qtmodeltester.check(model)
    assert model.required_tokens() == 110
    model.set_tier(row, 1)                      # 1,000 processings for 80 tokens
    assert model.required_tokens() == 180       # FIG 8's RT
    assert seen[-1] == 180
    assert model.items() == [{"offer_id": 11}, {"offer_id": 41, "quantity": 1000}]
    assert model.installed_product_ids() == [4]
    assert not model.line(1).needs_download() and model.line(0).needs_download()
    # the same offer twice is one line
    assert model.add_line(OrderLine(SOFTWARE_A, SOFTWARE_A["offers"][0])) == 0
    assert model.rowCount() == 2
    # bad tier index is refused and changes nothing
    assert not model.setData(model.index(1, OrderListModel.COL_TIER), 7, Qt.ItemDataRole.EditRole)
    assert model.required_tokens() == 180
    model.set_installed(0, True)
    assert model.installed_product_ids() == [1, 4]
    model.remove_rows([0])
    assert model.required_tokens() == 80 and seen[-1] == 80
    qtmodeltester.check(model)


def test_saved_items_rebuild_against_catalog():
    catalog = [SOFTWARE_A, SOFTWARE_D]

    def find(offer_id):
        for p in catalog:
            for o in p["offers"]:
                if o["id"] == offer_id:
                    return p, o
        return None

    lines = lines_from_items([{"offer_id": 41, "quantity": 1000}, {"offer_id": 999}, {"offer_id": 11}],
                             find, lambda pid: pid == 4)
    assert [(l.product["name"], l.tokens, l.installed) for l in lines] == [
        ("Software D", 80, True), ("Software A", 100, False)]


def test_library_model(qtmodeltester):
    now = datetime(2026, 1, 10, tzinfo=timezone.utc)
    licenses = [
        {"id": 1, "product_id": 1, "product_name": "Software A", "kind": "permanent"},
        {"id": 2, "product_id": 4, "product_name": "Software D", "kind": "processings", "processings": 1000},
        {"id": 3, "product_id": 2, "product_name": "Software B", "kind": "time",
         "created_at": (now - timedelta(days=5)).isoformat(), "expires_at": (now + timedelta(days=5)).isoformat()},
    ]
    agent = [{"license_id": 2, "product_id": "4", "processings_total": 1000, "processings_left": 50,
              "low_threshold": 100}]
    entries = build_entries(licenses, agent, {"1"}, now=now)
    model = LibraryModel()
    model.set_entries(entries)
    qtmodeltester.check(model)
    a, d, b = entries
    assert a.fraction is None and a.installed and a.left_text() == "Yours to keep"
    assert d.left == 50 and d.fraction == pytest.approx(0.05) and d.low
    assert b.fraction == pytest.approx(0.5) and b.left_text().startswith("5 d")


def test_ledger_model(qtmodeltester):
    answer = {"available_tokens": 380, "entries": [
        {"id": 2, "at": "2026-01-02T00:00:00Z", "kind": "order", "memo": "order 1", "tokens": -120,
         "balance_after": 380},
        {"id": 1, "at": "2026-01-01T00:00:00Z", "kind": "grant", "memo": "demo tokens", "tokens": 500,
         "balance_after": 500},
    ]}
    rows = normalize_ledger(answer)
    assert [r["balance"] for r in rows] == [500, 380]
    model = LedgerModel()
    model.set_rows(rows)
    qtmodeltester.check(model)
    assert model.index(0, 2).data() == "-120 tokens"   # newest first
    assert [y for _, y in balance_series(rows)] == [500.0, 380.0]


def test_statement_shows_an_order_once_with_cash(qtmodeltester):
    """The server's hold takes the tokens and its posting moves none: one row, not two.
    Tokens and Balance show the cash equivalent (FIG 17)."""
    from desktop_app.money import Pricing
    answer = {"entries": [
        {"id": 1, "at": "2026-01-01T00:00:00Z", "memo": "demo tokens", "tokens": 500, "balance_after": 500},
        {"id": 2, "at": "2026-01-02T00:00:00Z", "memo": "held for order:1", "tokens": -180, "balance_after": 320},
        {"id": 3, "at": "2026-01-02T00:00:01Z", "memo": "order 1", "tokens": 0, "balance_after": 320},
    ]}
    model = LedgerModel()
    model.set_pricing(Pricing(10))
    model.set_rows(normalize_ledger(answer))
    qtmodeltester.check(model)
    assert model.rowCount() == 2
    assert [model.index(r, 1).data() for r in range(2)] == ["held for order:1", "demo tokens"]
    assert model.index(0, 2).data() == "-180 tokens (-$18.00)"
    assert model.index(0, 3).data() == "320 tokens ($32.00)"
    assert model.index(1, 2).data() == "+500 tokens ($50.00)"


def test_sorting_is_done_by_the_source_and_keeps_the_filter(qtmodeltester):
    model = ProductTableModel()
    model.set_products([SOFTWARE_D, SOFTWARE_C, SOFTWARE_A])
    assert [model.index(r, 0).data() for r in range(3)] == ["Software A", "Software C", "Software D"]
    proxy = ProductFilterProxy()
    proxy.setSourceModel(model)
    proxy.set_kind("purchase")
    proxy.sort(1, Qt.SortOrder.DescendingOrder)      # by purchase price, dearest first
    assert [proxy.index(r, 0).data() for r in range(proxy.rowCount())] == ["Software A", "Software C"]
    proxy.sort(0, Qt.SortOrder.DescendingOrder)
    assert [proxy.index(r, 0).data() for r in range(proxy.rowCount())] == ["Software C", "Software A"]
    qtmodeltester.check(proxy)


def test_order_lines_show_cash_equivalents():
    from desktop_app.money import Pricing
    model = OrderListModel()
    model.add_line(OrderLine(SOFTWARE_A, SOFTWARE_A["offers"][0]))
    assert model.index(0, OrderListModel.COL_TOKENS).data() == "100"
    model.pricing = Pricing(10)          # FIG 17: 10 cents a token
    assert model.index(0, OrderListModel.COL_TOKENS).data() == "100 ($10.00)"
    assert Pricing(10).tokens_text(1) == "1 token ($0.10)" and Pricing().tokens_text(5) == "5 tokens"
    # the tier choices (the combo box in the Quantity column) are priced in cash too
    row = model.add_line(OrderLine(SOFTWARE_D, SOFTWARE_D["offers"][0]))
    choices = model.index(row, OrderListModel.COL_TIER).data(TierChoicesRole)
    assert choices[1] == "1,000 processings — 80 tokens ($8.00)"


def test_library_entry_for_another_computer():
    licenses = [{"id": 9, "product_id": 4, "product_name": "Software D", "kind": "processings",
                 "processings": 100, "device_id": "b" * 32, "device_name": "office laptop"}]
    (entry,) = build_entries(licenses, [], set(), device_id="a" * 32)
    assert entry.left_text() == "On your other computer “office laptop”"
    (entry,) = build_entries(licenses, [], set(), device_id="b" * 32)
    assert entry.left_text().startswith("Unknown")


def test_store_page_keeps_the_product_through_filtering(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENRENT_HOME", str(tmp_path))
    from desktop_app.paths import app_paths
    from desktop_app.settings.config import Settings
    from desktop_app.state import AppState
    from desktop_app.store.page import StorePage
    state = AppState(app_paths().ensure(), Settings(), "http://127.0.0.1:9")
    state.categories = [{"id": 10, "name": "Office"}, {"id": 20, "name": "Graphics"}]
    state.products = [SOFTWARE_A, SOFTWARE_C, SOFTWARE_D]
    page = StorePage(state)
    qtbot.addWidget(page)
    page.reload()
    assert page.show_product(4) and page.details.name.text() == "Software D"
    page.search.setText("software")                  # still listed: still selected
    assert page.table.currentIndex().data() == "Software D"
    page.search.setText("spreadsheet")               # filtered out: its details stay on show
    assert page.proxy.rowCount() == 1 and page.details.name.text() == "Software D"
    page.search.setText("")
    assert page.table.currentIndex().data() == "Software D"
    page.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
    assert [page.proxy.index(r, 0).data() for r in range(3)] == ["Software D", "Software C", "Software A"]
    assert page.table.currentIndex().data() == "Software D"


def test_grid_double_click_and_tier_editor(qtbot, tmp_path, monkeypatch):
    """FIG 7: activating a ticked cell adds that offer; FIG 8: the tier combo box edits the line."""
    monkeypatch.setenv("TOKENRENT_HOME", str(tmp_path))
    from desktop_app.orders.page import OrderPage, TierDelegate
    from desktop_app.paths import app_paths
    from desktop_app.settings.config import Settings
    from desktop_app.state import AppState
    from desktop_app.store.page import StorePage
    state = AppState(app_paths().ensure(), Settings(), "http://127.0.0.1:9")
    state.products = [SOFTWARE_A, SOFTWARE_C, SOFTWARE_D]
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
    assert editor.count() == 2 and editor.currentIndex() == 0
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


def test_category_names_are_not_clipped(qtbot, tmp_path, monkeypatch):
    """FIG 6: the list is as wide as a long name; a longer one wraps; no sideways scrolling."""
    monkeypatch.setenv("TOKENRENT_HOME", str(tmp_path))
    from desktop_app.paths import app_paths
    from desktop_app.settings.config import Settings
    from desktop_app.state import AppState
    from desktop_app.store.page import StorePage
    state = AppState(app_paths().ensure(), Settings(), "http://127.0.0.1:9")
    state.categories = [{"id": 1, "name": "Scanned Document Enhancement"}, {"id": 2, "name": "Computer Games"},
                        {"id": 3, "name": "Engineering Document Management Systems (EDMS)"}]
    state.products = [SOFTWARE_A]
    store = StorePage(state)
    qtbot.addWidget(store)
    store.resize(1140, 700)
    store.show()
    store.reload()
    qtbot.waitExposed(store)
    view = store.category_view
    assert view.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    assert view.viewport().width() >= view.fontMetrics().horizontalAdvance("Scanned Document Enhancement")
    one_line = view.visualRect(store.categories.index(2)).height()
    assert view.visualRect(store.categories.index(3)).height() > one_line       # wrapped, not cut
