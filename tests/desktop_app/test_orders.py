"""FIG 8/9/10 with the real server, the real agent (temp home) and real downloads:
the patent's own example (500 tokens, Software A + 1,000 processings of Software D,
320 left), never buying twice, the shortage flow with a saved list, downloads that
resume, and --product links."""
from __future__ import annotations

import hashlib

from PySide6.QtWidgets import QComboBox

from desktop_app.library.download import Download, DownloadPaused
from tests.desktop_app.conftest import sign_in


def product_named(state, name):
    return next(p for p in state.products if p.name == name)


def add_from_store(qtbot, window, name, tier_text=None):
    """Select the product in the store grid and press its offer's "Add to order"."""
    state = window.state
    product = product_named(state, name)
    assert window.open_product(product.id)
    details = window.store.details
    offer = next(o for o in product.offers if o.kind != "convert")
    if tier_text:
        combo = details.findChild(QComboBox, f"tiers_{offer.id}")
        combo.setCurrentIndex(next(i for i in range(combo.count()) if combo.itemText(i).startswith(tier_text)))
    button = next(b for b in details.findChildren(type(window.sign_button)) if b.objectName() == f"add_{offer.id}")
    button.click()
    return product


def wait_device(qtbot, state):
    qtbot.waitUntil(lambda: state.device_id is not None, timeout=60000)


def test_fig8_fig9_order_with_agent_and_download(qtbot, store_app, store_server):
    user = store_server.new_user(tokens=500)
    window, state = store_app.window, store_app.state
    sign_in(qtbot, store_app, user)
    wait_device(qtbot, state)                                   # device registered, vendor key trusted
    add_from_store(qtbot, window, "Software A")
    add_from_store(qtbot, window, "Software D", "1,000 processings")
    orders = window.orders
    window.show_page(orders)
    assert orders.model.rowCount() == 2
    # FIG 8: "Do you have Software D installed on your computer?  Yes"
    d_row = next(r for r in range(2) if orders.model.line(r).product.name == "Software D")
    orders.model.set_installed(d_row, True)
    assert (orders.labels["rt"].text(), orders.labels["at"].text(), orders.labels["left"].text()) == \
        ("180 tokens ($18.00)", "500 tokens ($50.00)", "320 tokens ($32.00)")   # FIG 17: and in cash
    assert "$18.00" in orders.cash.text()
    # live update: a cheaper tier changes RT at once
    orders.model.set_tier(d_row, 0)
    assert orders.labels["rt"].text() == "110 tokens ($11.00)"
    orders.model.set_tier(d_row, 1)

    orders.order_button.click()
    dialog = orders.confirm_dialog
    plan = [dialog.plan.item(i).text() for i in range(dialog.plan.count())]
    assert any("We will download Software A" in t for t in plan)
    assert any("Software D" in t and "new authorization code only" in t for t in plan)
    assert dialog.labels["rt"].text() == "180 tokens ($18.00)"
    qtbot.waitUntil(lambda: dialog.labels["left"].text() == "320 tokens ($32.00)", timeout=20000)  # the quote
    assert dialog.labels["at"].text() == "500 tokens ($50.00)"
    dialog.confirm_button.click()
    dialog.place()                      # a second click while the first is on its way: ignored
    qtbot.waitUntil(lambda: "ORDER CONFIRMED" in orders.banner.text() or dialog.confirm_button.isEnabled(),
                    timeout=30000)
    assert "ORDER CONFIRMED" in orders.banner.text(), dialog.banner.text()
    assert store_server.me(user)["available_tokens"] == 320
    orders_on_server = store_server.api("GET", "/v1/orders", user).json()
    assert len(orders_on_server) == 1
    # a network retry with the same idempotency key buys nothing again
    again = state.api.place_order(dialog.items, state.device_id, dialog.installed_ids, dialog.idempotency_key)
    assert store_server.me(user)["available_tokens"] == 320 and again.id == orders_on_server[0]["id"]

    # the agent got both codes; Software A was downloaded, checked and installed
    library = window.library
    window.show_page(library)
    qtbot.waitUntil(lambda: {e.name for e in state.entries if e.agent_known} >= {"Software A", "Software D"},
                    timeout=30000)
    d_entry = next(e for e in state.entries if e.name == "Software D")
    assert (d_entry.kind, d_entry.remaining, d_entry.total) == ("processings", 1000, 1000)   # the agent's count
    qtbot.waitUntil(lambda: any(e.name == "Software A" and e.installed for e in state.entries)
                    or "Software A:" in library.banner.text(), timeout=60000)
    assert "Installed" in library.banner.text(), library.banner.text()
    assert any(e.name == "Software A" and e.installed for e in state.entries)
    assert orders.model.rowCount() == 0
    assert store_server.api("GET", "/v1/order-list", user).json().get("items") == []
    # the store says what the user already holds
    window.open_product(product_named(state, "Software D").id)
    assert "You hold this: 1,000 of 1,000 processings left" in window.store.details.held.text()
    # "installed on this computer?" is pre-filled from what the app installed
    add_from_store(qtbot, window, "Software A")
    assert orders.model.line(0).installed and not orders.model.line(0).needs_download()
    orders.model.clear()
    # the statement shows the order once (the hold that took the 180 tokens), not its 0-token posting
    wallet = window.wallet
    window.show_page(wallet)
    qtbot.waitUntil(lambda: wallet.ledger.rowCount() >= 2, timeout=20000)
    tokens = [wallet.ledger.index(r, 2).data() for r in range(wallet.ledger.rowCount())]
    assert tokens == ["-180 tokens (-$18.00)", "+500 tokens ($50.00)"], tokens


def test_shortage_save_for_later_then_buy_and_come_back(qtbot, store_app, store_server):
    user = store_server.new_user(tokens=100)
    window, state = store_app.window, store_app.state
    sign_in(qtbot, store_app, user)
    wait_device(qtbot, state)
    add_from_store(qtbot, window, "Software A")
    add_from_store(qtbot, window, "Software D", "1,000 processings")
    orders = window.orders
    orders.order_button.click()
    orders.confirm_dialog.confirm_button.click()
    qtbot.waitUntil(lambda: getattr(orders, "shortage_dialog", None) is not None, timeout=30000)
    shortage = orders.shortage_dialog
    assert shortage.shortage == 80 and "short of 80 tokens ($8.00)" in \
        shortage.findChild(type(window.balance_label), "shortage_text").text()
    assert store_server.me(user)["available_tokens"] == 100          # nothing was taken
    # save the order for later, sign out, sign in: the list is back
    next(b for b in shortage.findChildren(type(window.sign_button)) if b.objectName() == "shortage_save").click()
    qtbot.waitUntil(lambda: len(store_server.api("GET", "/v1/order-list", user).json().get("items", [])) == 2,
                    timeout=20000)
    state.sign_out()
    orders.model.clear()
    sign_in(qtbot, store_app, user)
    qtbot.waitUntil(lambda: orders.model.rowCount() == 2, timeout=20000)
    assert orders.model.required_tokens() == 180
    # buy tokens now and come back to the same order
    orders.order_button.click()
    orders.confirm_dialog.confirm_button.click()
    qtbot.waitUntil(lambda: orders.shortage_dialog is not shortage, timeout=30000)
    next(b for b in orders.shortage_dialog.findChildren(type(window.sign_button))
         if b.objectName() == "shortage_buy").click()
    buy = window.wallet.buy_dialog
    assert window.pages.currentWidget() is window.wallet and buy.tokens.value() == 80
    buy.card_number.setText("4242424242424242")
    buy.card_expiry.setText("12/39")
    buy.card_cvc.setText("123")
    buy.buy_button.click()
    qtbot.waitUntil(lambda: window.pages.currentWidget() is orders and state.available_tokens == 180, timeout=30000)
    assert orders.model.rowCount() == 2                                 # the same order
    orders.order_button.click()
    orders.confirm_dialog.confirm_button.click()
    qtbot.waitUntil(lambda: "ORDER CONFIRMED" in orders.banner.text(), timeout=30000)
    assert store_server.me(user)["available_tokens"] == 0


def test_download_from_the_server_resumes(qtbot, store_app, store_server, tmp_path):
    """The real server's download: paused part-way, resumed by a new Download (as after a
    restart) with HTTP Range, then checked against the published SHA-256."""
    user = store_server.new_user(tokens=500)
    state = store_app.state
    sign_in(qtbot, store_app, user)
    wait_device(qtbot, state)
    product = product_named(state, "Software A")
    offer = product.offers[0]
    answer = state.api.place_order([{"offer_id": offer.id}], state.device_id, [], "dl-test-" + user.username)
    delivery = answer.deliveries[0]
    assert delivery.sha256 == product.latest_version.sha256
    url, dest = state.api.url(delivery.download_url), tmp_path / "a.trpkg"
    first = Download(url, dest, expected_sha256=delivery.sha256, expected_size=delivery.size,
                     headers=state.api.auth_headers(), chunk_size=256)
    first.on_progress = lambda p: first.pause() if p.received >= delivery.size // 2 else None
    try:
        first.run()
        raise AssertionError("the download should have paused")
    except DownloadPaused:
        pass
    kept = first.received_bytes()
    assert 0 < kept < delivery.size
    path = Download(url, dest, expected_sha256=delivery.sha256, expected_size=delivery.size,
                    headers=state.api.auth_headers()).run()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == delivery.sha256


def test_product_link_opens_the_product_page(qtbot, app_home, store_server):
    from desktop_app.app import Options, StoreApp
    product_id = next(p["id"] for p in store_server.api("GET", "/v1/products").json() if p["name"] == "Software D")
    app = StoreApp(Options(server=store_server.base_url, product=str(product_id)))
    app.start()
    try:
        qtbot.waitUntil(lambda: app.ready, timeout=30000)
        assert app.window.pages.currentWidget() is app.window.store
        assert app.window.store.details.name.text() == "Software D"
        assert "processings" in app.window.store.details.findChild(QComboBox).currentText()
    finally:
        from desktop_app.api.worker import pending_jobs
        qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=60000)
        app.window.close()
        app.stop()


def test_extend_and_convert_from_the_library(qtbot, store_app, store_server):
    """Extend (h-j) and Convert (e-g) go straight into an order for that license."""
    user = store_server.new_user(tokens=1000)
    window, state = store_app.window, store_app.state
    sign_in(qtbot, store_app, user)
    wait_device(qtbot, state)
    add_from_store(qtbot, window, "ScanClean Pro")      # rent by time, convertible later
    orders = window.orders
    orders.order_button.click()
    orders.confirm_dialog.confirm_button.click()
    qtbot.waitUntil(lambda: "ORDER CONFIRMED" in orders.banner.text(), timeout=30000)
    library = window.library
    window.show_page(library)
    qtbot.waitUntil(lambda: any(e.name == "ScanClean Pro" and e.agent_known for e in state.entries), timeout=30000)
    library.select_product(product_named(state, "ScanClean Pro").id)
    entry = library.selected()
    assert entry.kind == "time" and entry.fraction is not None and entry.fraction > 0.99
    days_before = entry.remaining
    assert library.buttons["extend"].isEnabled() and library.buttons["convert"].isEnabled()
    library.buttons["extend"].click()
    assert window.pages.currentWidget() is orders
    line = orders.model.line(0)
    assert line.license_id == entry.license.id and line.kind == "rent_time" and not line.needs_download()
    orders.order_button.click()
    orders.confirm_dialog.confirm_button.click()
    qtbot.waitUntil(lambda: "ORDER CONFIRMED" in orders.banner.text() and orders.model.rowCount() == 0,
                    timeout=30000)
    window.show_page(library)
    qtbot.waitUntil(lambda: any(e.name == "ScanClean Pro" and e.remaining and e.remaining > days_before + 29 * 86400
                                for e in state.entries), timeout=30000)     # 30 more days, same license
    assert sum(1 for e in state.entries if e.name == "ScanClean Pro") == 1
    library.select_product(entry.product_id)
    library.buttons["convert"].click()
    assert orders.model.line(0).kind == "convert"
    orders.order_button.click()
    orders.confirm_dialog.confirm_button.click()
    qtbot.waitUntil(lambda: any(e.name == "ScanClean Pro" and e.kind == "permanent" for e in state.entries),
                    timeout=30000)


def test_declining_to_sign_in_while_ordering_leaves_the_dialog_usable(qtbot, store_app, store_server):
    """The session ends while the order is being placed; the user first declines to sign in
    again (Confirm must not stay disabled), then confirms again and signs in: bought once."""
    from desktop_app.api.worker import pending_jobs
    user = store_server.new_user(tokens=500)
    window, state = store_app.window, store_app.state
    sign_in(qtbot, store_app, user)
    wait_device(qtbot, state)
    add_from_store(qtbot, window, "Software A")
    orders = window.orders
    orders.order_button.click()
    dialog = orders.confirm_dialog
    qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=30000)          # the quote is in
    used = window.sign_in_dialog
    assert store_server.api("DELETE", "/v1/sessions/current", state.api.token).status_code == 204
    dialog.confirm_button.click()
    qtbot.waitUntil(lambda: window.sign_in_dialog is not used and window.sign_in_dialog.isVisible(),
                    timeout=30000)
    declined = window.sign_in_dialog
    declined.reject()
    qtbot.waitUntil(lambda: dialog.confirm_button.isEnabled(), timeout=10000)
    assert not dialog.placing and dialog.isVisible()
    assert "session has ended" in dialog.banner.text()
    assert store_server.me(user)["available_tokens"] == 500
    dialog.confirm_button.click()                                         # again: asks again
    qtbot.waitUntil(lambda: window.sign_in_dialog is not declined and window.sign_in_dialog.isVisible(),
                    timeout=30000)
    window.sign_in_dialog.password.setText(user.password)
    window.sign_in_dialog.submit()
    qtbot.waitUntil(lambda: "ORDER CONFIRMED" in orders.banner.text(), timeout=30000)
    assert store_server.me(user)["available_tokens"] == 400
    r = store_server.api("GET", "/v1/orders", user).json()
    assert len(r) == 1


def test_saved_list_comes_back_when_the_catalog_arrives_after_sign_in(qtbot, app_home, store_server):
    """Sign-in (and with it the saved order list) can be answered before the catalog: the
    list is rebuilt once both are there, not lost."""
    from desktop_app.api.worker import pending_jobs
    from desktop_app.app import Options, StoreApp
    user = store_server.new_user(tokens=100)
    products = store_server.api("GET", "/v1/products").json()
    a = next(p for p in products if p["name"] == "Software A")
    d = next(p for p in products if p["name"] == "Software D")
    items = [{"offer_id": next(o["id"] for o in a["offers"] if o["kind"] == "purchase")},
             {"offer_id": next(o["id"] for o in d["offers"] if o["kind"] == "rent_processings"),
              "quantity": 1000}]
    r = store_server.api("PUT", "/v1/order-list", user, json={"items": items})
    assert r.status_code == 200, r.text
    app = StoreApp(Options(server=store_server.base_url))
    try:
        # signed in before start(): the catalog has not even been asked for yet
        app.state.sign_in(user.username, user.password)
        orders = app.window.orders
        qtbot.waitUntil(lambda: app.state.me is not None, timeout=20000)
        qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=60000)
        assert not app.state.catalog_loaded and orders.model.rowCount() == 0
        app.start()
        qtbot.waitUntil(lambda: orders.model.rowCount() == 2, timeout=30000)
        assert orders.model.required_tokens() == 180
        assert "saved order list is back" in orders.banner.text()
    finally:
        qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=60000)
        app.window.close()
        app.stop()


def test_shortage_remove_items_until_the_order_fits(qtbot, store_app, store_server):
    """FIG 10 "remove items": the order table with its first item selected and a hint that
    follows the server's quote live (its `payable` and `shortage`); removing items (Delete)
    until the order fits makes it orderable, and it is placed for the right amount."""
    from PySide6.QtCore import Qt
    user = store_server.new_user(tokens=100)
    window, state = store_app.window, store_app.state
    sign_in(qtbot, store_app, user)
    wait_device(qtbot, state)
    add_from_store(qtbot, window, "Software A")                      # 100
    add_from_store(qtbot, window, "Software D", "1,000 processings")   # 80
    orders = window.orders
    c = product_named(state, "Software C")
    window.add_to_order(c, c.offer_of_kind("rent_uses"), 0)   # 10 uses: 5
    window.show_page(orders)
    assert orders.model.required_tokens() == 185
    orders.order_button.click()
    orders.confirm_dialog.confirm_button.click()
    qtbot.waitUntil(lambda: getattr(orders, "shortage_dialog", None) is not None, timeout=30000)
    shortage = orders.shortage_dialog
    assert shortage.shortage == 85
    next(b for b in shortage.findChildren(type(window.sign_button)) if b.objectName() == "shortage_remove").click()
    assert not shortage.isVisible() and window.pages.currentWidget() is orders
    assert [i.row() for i in orders.table.selectionModel().selectedRows()] == [0]
    assert orders.table.currentIndex().row() == 0
    assert "Still short of 85 tokens ($8.50)" in orders.banner.text()

    def row_of(name):
        return next(r for r in range(orders.model.rowCount()) if orders.model.line(r).product.name == name)

    orders.select_row(row_of("Software D"))
    qtbot.keyClick(orders.table, Qt.Key.Key_Delete)
    assert orders.model.rowCount() == 2 and orders.model.required_tokens() == 105
    assert (orders.labels["rt"].text(), orders.labels["at"].text(), orders.labels["left"].text()) == \
        ("105 tokens ($10.50)", "100 tokens ($10.00)", "-5 tokens (-$0.50)")
    qtbot.waitUntil(lambda: "Still short of 5 tokens ($0.50)" in orders.banner.text(), timeout=20000)
    assert len(orders.table.selectionModel().selectedRows()) == 1      # the next item is ready to go

    orders.select_row(row_of("Software C"))
    orders.remove_button.click()
    assert [orders.model.line(r).product.name for r in range(orders.model.rowCount())] == ["Software A"]
    assert (orders.labels["rt"].text(), orders.labels["at"].text(), orders.labels["left"].text()) == \
        ("100 tokens ($10.00)", "100 tokens ($10.00)", "0 tokens ($0.00)")
    qtbot.waitUntil(lambda: "The order fits now: 0 tokens ($0.00) left" in orders.banner.text(), timeout=20000)
    assert orders.quote.payable and orders.quote.shortage == 0
    assert orders.order_button.isEnabled()

    orders.order_button.click()
    dialog = orders.confirm_dialog
    qtbot.waitUntil(lambda: dialog.labels["left"].text() == "0 tokens ($0.00)", timeout=20000)   # the quote
    assert dialog.labels["rt"].text() == "100 tokens ($10.00)"
    dialog.confirm_button.click()
    qtbot.waitUntil(lambda: "ORDER CONFIRMED" in orders.banner.text(), timeout=30000)
    assert store_server.me(user)["available_tokens"] == 0
    assert len(store_server.api("GET", "/v1/orders", user).json()) == 1


def test_the_server_decides_whether_an_order_fits(qtbot, store_app, store_server):
    """RT > AT, but the vendor lets this account draw 100 tokens on credit: the server's quote
    says the order is payable, so the order page does not call it short (it never compares RT
    and AT itself), and the order goes through, leaving the wallet at -80."""
    user = store_server.new_user(tokens=100)
    r = store_server.api("PATCH", f"/v1/admin/users/{user.id}", store_server.admin(), json={"negative_limit": 100})
    assert r.status_code == 200, r.text
    window, state = store_app.window, store_app.state
    sign_in(qtbot, store_app, user)
    wait_device(qtbot, state)
    add_from_store(qtbot, window, "Software A")                        # 100
    add_from_store(qtbot, window, "Software D", "1,000 processings")   # 80
    orders = window.orders
    window.show_page(orders)
    qtbot.waitUntil(lambda: orders.quote is not None, timeout=20000)
    quote = orders.quote
    assert (quote.required_tokens, quote.available_tokens, quote.payable, quote.shortage) == (180, 100, True, 0)
    assert orders.labels["left"].text() == "-80 tokens (-$8.00)"
    assert "#b00020" not in orders.labels["left"].styleSheet()          # not shown as short
    orders.start_removing()                                             # even the FIG 10 hint agrees
    assert "The order fits now" in orders.banner.text()
    orders.order_button.click()
    dialog = orders.confirm_dialog
    qtbot.waitUntil(lambda: dialog.labels["left"].text() == "-80 tokens (-$8.00)", timeout=20000)
    assert "#b00020" not in dialog.labels["left"].styleSheet()
    dialog.confirm_button.click()
    qtbot.waitUntil(lambda: "ORDER CONFIRMED" in orders.banner.text(), timeout=30000)
    assert store_server.me(user)["available_tokens"] == -80
