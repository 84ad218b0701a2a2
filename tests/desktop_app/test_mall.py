"""The mall in the storefront (FIG 15, 17): a real MSP and two vendors as processes
(tests/support/network.py, SQLite and PostgreSQL), the real storefront signed in at A.
The Malls page lists the members and the user's tokens at each (a session at B opened
with A's assertion); an exchange from the dialog completes and the wallet shows both
balances; browsing B shows B's products priced in Token-B, cash and Token-A."""
from __future__ import annotations

import pytest

from tests.desktop_app.conftest import sign_in
from tests.support.network import funded_user, start_network

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def net(backend, tmp_path_factory):
    network, cleanup = start_network(backend, tmp_path_factory.mktemp(f"mall-{backend}"), demo=True)
    yield network
    cleanup()


@pytest.fixture
def mall_app(qtbot, app_home, net):
    """The storefront of Mall A's server, started and shown (the sign-in dialog closed)."""
    from desktop_app.api.worker import pending_jobs
    from desktop_app.app import Options, StoreApp

    app = StoreApp(Options(server=net.a.base_url))
    app.start()
    qtbot.waitUntil(lambda: app.ready, timeout=20000)
    dialog = getattr(app.window, "sign_in_dialog", None)
    if dialog is not None:
        dialog.reject()
    yield app
    qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=60000)
    app.window.close()
    app.window.deleteLater()
    app.stop()


def balance_cell(model, member_id):
    return model.data(model.index(model.row_of(member_id), 4))


def open_malls(qtbot, app, net):
    window = app.window
    window.show_page(window.malls)
    model = app.state.mall.members
    try:
        qtbot.waitUntil(lambda: model.rowCount() == 2 and model.balance(net.b_id) is not None, timeout=30000)
    except Exception:
        raise AssertionError(f"rows {model.rowCount()}, banner {window.malls.banner.text()!r}, "
                             f"main {window.banner.text()!r}") from None
    return window.malls, model


def test_the_malls_page_lists_the_members_and_the_tokens_at_each(qtbot, mall_app, net):
    user = funded_user(net.a, 300)
    sign_in(qtbot, mall_app, user)
    page, model = open_malls(qtbot, mall_app, net)
    assert [model.data(model.index(r, 0)) for r in range(2)] == ["Mall A (your store)", "Mall B"]
    assert [model.data(model.index(r, 1)) for r in range(2)] == ["Token-A", "Token-B"]
    assert [model.data(model.index(r, 2)) for r in range(2)] == ["$0.10", "$0.05"]
    assert [model.data(model.index(r, 3)) for r in range(2)] == ["active", "active"]
    assert balance_cell(model, net.a_id) == "300 Token-A ($30.00)"
    # B's own answer, through a session opened with A's assertion: the linked account there
    assert balance_cell(model, net.b_id) == "0 Token-B ($0.00)"
    assert page.browse_button.isEnabled()
    page.select(net.b_id)
    assert page.exchange_button.isEnabled()
    page.select(net.a_id)
    assert not page.exchange_button.isEnabled()        # no exchange into your own tokens


def test_an_exchange_from_the_dialog_completes_and_the_wallet_shows_both_balances(qtbot, mall_app, net):
    user = funded_user(net.a, 150)
    sign_in(qtbot, mall_app, user)
    page, model = open_malls(qtbot, mall_app, net)
    page.select(net.b_id)
    dialog = page.open_exchange()
    assert dialog.member.currentData() == net.b_id
    dialog.tokens.setValue(100)
    dialog.quote_button.click()
    qtbot.waitUntil(lambda: dialog.quote is not None, timeout=20000)
    # the server's quote (the patent's example): 100 Token-A -> 200 Token-B, $10.00
    q = dialog.quote
    assert (q.tokens_asked, q.tokens_from, q.tokens_to, q.value_cents) == (100, 100, 200, 1000)
    text = dialog.details.text()
    assert "100 Token-A leave your wallet" in text and "200 Token-B" in text and "$10.00" in text
    assert "stay with you" not in text                 # N' = N: nothing is left over
    assert "This rate holds for 4:5" in dialog.countdown.text() or "This rate holds for 5:00" in dialog.countdown.text()
    with qtbot.waitSignal(dialog.exchangeStarted, timeout=20000) as started:
        dialog.confirm_button.click()
    assert started.args[0].tokens_from == 100
    exchanges = mall_app.state.mall.exchanges
    qtbot.waitUntil(lambda: exchanges.rowCount() == 1 and not exchanges.pending(), timeout=60000)
    assert exchanges.data(exchanges.index(0, 4)) == "completed"
    assert exchanges.data(exchanges.index(0, 2)) == "100 Token-A"
    assert exchanges.data(exchanges.index(0, 3)) == "200 Token-B"
    qtbot.waitUntil(lambda: balance_cell(model, net.b_id) == "200 Token-B ($10.00)", timeout=30000)
    qtbot.waitUntil(lambda: balance_cell(model, net.a_id) == "50 Token-A ($5.00)", timeout=30000)
    # the servers agree with what is on show
    assert net.a.me(user)["available_tokens"] == 50
    window = mall_app.window
    window.show_page(window.wallet)
    wallet = window.wallet
    qtbot.waitUntil(lambda: wallet.mall_box.isVisible(), timeout=20000)
    assert wallet.mall_members.model() is model and wallet.exchanges.model() is exchanges
    qtbot.waitUntil(lambda: "50 tokens" in wallet.balance.text(), timeout=20000)


def test_browsing_b_shows_its_products_in_token_b_cash_and_home_tokens(qtbot, mall_app, net):
    from PySide6.QtWidgets import QLabel

    from desktop_app.store.models import ProductRole

    user = funded_user(net.a, 10)
    sign_in(qtbot, mall_app, user)
    page, _model = open_malls(qtbot, mall_app, net)
    b_products = net.b.api("GET", "/v1/products").json()
    page.select(net.b_id)
    store = mall_app.window.store
    page.browse_button.click()
    qtbot.waitUntil(lambda: store.browsed is not None, timeout=20000)
    assert mall_app.window.pages.currentWidget() is store
    assert "Mall B" in store.browse_banner.text() and store.home_button.isVisible()
    assert "rounded up" in store.browse_banner.toolTip()
    grid = store.products
    assert grid.rowCount() == len(b_products)
    by_name = {p["name"]: p for p in b_products}
    for row in range(grid.rowCount()):
        product = grid.index(row, 0).data(ProductRole)
        purchase = next((o for o in by_name[product.name]["offers"] if o["kind"] == "purchase"), None)
        if purchase is None or purchase.get("tiers"):
            continue
        tokens = purchase["tokens"]
        cents = tokens * 5
        home = -(-tokens * 5 // 10)        # Token-B at $0.05, Token-A at $0.10, rounded up
        assert grid.index(row, 1).data() == f"✓ {tokens:,} (${cents // 100}.{cents % 100:02d})\n≈ {home:,} Token-A"
        store.details.show_product(product)
        price = store.details.findChild(QLabel, f"price_{purchase['id']}")
        assert price.text() == (f"{tokens:,} Token-B (${cents // 100}.{cents % 100:02d}, "
                                f"{home:,} Token-A at today's rate)")
        assert "rounded up" in price.toolTip()
        break
    else:
        pytest.fail("no product of B with a plain purchase price")
    store.home_button.click()
    assert store.browsed is None and not store.home_button.isVisible()
    assert grid.rowCount() == len(mall_app.state.products)


def browse_b(qtbot, app, net):
    page, model = open_malls(qtbot, app, net)
    page.select(net.b_id)
    page.browse_button.click()
    store = app.window.store
    qtbot.waitUntil(lambda: store.browsed is not None, timeout=20000)
    return store, model


def b_offer(store, name="Software A", kind="purchase"):
    product = next(p for p in store.browsed.products if p.name == name)
    return product, next(o for o in product.offers if o.kind == kind)


def test_buying_at_b_when_short_offers_an_exchange_then_the_order_goes_through(qtbot, mall_app, net):
    user = funded_user(net.a, 500)
    sign_in(qtbot, mall_app, user)
    store, model = browse_b(qtbot, mall_app, net)
    product, offer = b_offer(store)
    price = offer.tokens
    store.details.show_product(product)
    add = store.details.findChild(type(store.home_button), f"add_{offer.id}")
    add.click()                                          # at B: its own order flow, not the home order list
    dialog = mall_app.window.member_order_dialog
    qtbot.waitUntil(lambda: dialog.quote is not None, timeout=20000)
    assert dialog.quote.required_tokens == price and dialog.quote.available_tokens == 0
    assert dialog.exchange_button.isVisible() and f"{price:,} Token-B" in dialog.banner.text()
    # placing anyway: B refuses (402) and the shortage names B's numbers; the next try is a new key
    first_key = dialog.idempotency_key
    dialog.place_button.click()
    qtbot.waitUntil(lambda: not dialog.busy and dialog.idempotency_key != first_key, timeout=20000)
    assert dialog.shortage == price
    # the home store's shortage dialog, in Token-B, with the exchange as a fourth way
    qtbot.waitUntil(lambda: getattr(dialog, "shortage_dialog", None) is not None, timeout=20000)
    shortage = dialog.shortage_dialog
    assert shortage.shortage == price and "Mall B" in shortage.windowTitle()
    assert f"{price:,} Token-B" in shortage.findChild(type(dialog.what), "shortage_text").text()
    ways = shortage.ways
    assert set(ways) == {"shortage_remove", "shortage_buy", "shortage_save", "shortage_exchange"}
    assert not ways["shortage_buy"].isHidden()           # B sells Token-B by card to the session there
    assert ways["shortage_save"].isHidden() and "order list" in shortage.hidden_note.text()
    ways["shortage_exchange"].click()
    exchange = dialog.exchange_dialog
    assert exchange.member.currentData() == net.b_id
    assert exchange.tokens.value() == -(-price * 5 // 10)
    exchange.quote_button.click()
    qtbot.waitUntil(lambda: exchange.quote is not None, timeout=20000)
    assert exchange.quote.tokens_to >= price
    exchange.confirm_button.click()
    qtbot.waitUntil(lambda: dialog.quote is not None and dialog.quote.shortage == 0
                    and dialog.quote.available_tokens >= price, timeout=60000)
    assert not dialog.exchange_button.isVisible()
    with qtbot.waitSignal(dialog.ordered, timeout=30000) as ordered:
        dialog.place_button.click()
    receipt = ordered.args[0]
    assert [i.product_name for i in receipt.items] == ["Software A"] and receipt.required_tokens == price
    # B's books say so: the Token-B the exchange brought, less the price
    at_b = exchange.quote.tokens_to - price
    qtbot.waitUntil(lambda: model.balance(net.b_id) is not None and model.balance(net.b_id).tokens == at_b,
                    timeout=30000)
    assert "ORDER CONFIRMED at Mall B" in mall_app.window.banner.text() or \
        "refused a code" in mall_app.window.banner.text()


def test_short_at_b_the_shortage_dialog_buys_token_b_by_card_there(qtbot, mall_app, net):
    """The shortage dialog's "buy tokens" at another member buys that member's tokens by card at
    its server (through the session there); then the order goes through, paid with them."""
    user = funded_user(net.a, 100)
    sign_in(qtbot, mall_app, user)
    store, model = browse_b(qtbot, mall_app, net)
    product, offer = b_offer(store)
    price = offer.tokens
    store.details.show_product(product)
    store.details.findChild(type(store.home_button), f"add_{offer.id}").click()
    dialog = mall_app.window.member_order_dialog
    try:
        qtbot.waitUntil(lambda: dialog.quote is not None, timeout=20000)
    except Exception:
        raise AssertionError(f"no quote: {dialog.banner.text()!r}") from None
    dialog.place_button.click()
    qtbot.waitUntil(lambda: getattr(dialog, "shortage_dialog", None) is not None, timeout=20000)
    home_before = mall_app.state.me.available_tokens
    dialog.shortage_dialog.ways["shortage_buy"].click()
    buy = dialog.buy_dialog
    assert "Token-B" in buy.windowTitle() and buy.tokens.value() == price and not buy.offline_radios
    buy.card_number.setText("4242424242424242")
    buy.card_expiry.setText("12/39")
    buy.card_cvc.setText("123")
    with qtbot.waitSignal(buy.purchased, timeout=30000) as bought:
        buy.buy_button.click()
    assert bought.args[0].status == "completed" and bought.args[0].tokens == price
    qtbot.waitUntil(lambda: dialog.quote is not None and dialog.quote.shortage == 0, timeout=30000)
    with qtbot.waitSignal(dialog.ordered, timeout=30000):
        dialog.place_button.click()
    # B's tokens paid for it; the home tokens did not move
    qtbot.waitUntil(lambda: model.balance(net.b_id) is not None and model.balance(net.b_id).tokens == 0,
                    timeout=30000)
    mall_app.state.refresh_me()
    qtbot.waitUntil(lambda: mall_app.state.me.available_tokens == home_before, timeout=10000)
