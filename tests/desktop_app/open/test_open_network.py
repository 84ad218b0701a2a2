"""Open tokens in the storefront against a real network (issue 12): an MSP and two vendors as
processes (tests/support/network.py), the real storefront signed in at Mall A. Buying open
tokens and a gift certificate through the dialogs, the open wallet read through an MSP session
(an assertion with audience "msp"), giving and redeeming a certificate, an order paid in part
with open tokens (the split before confirming, the kinds on the receipt), and the open shortage
dialog's kinds. Every figure checked is the servers' answer."""
from __future__ import annotations

import re
import uuid

import pytest

from tests.desktop_app.conftest import sign_in
from tests.support.network import funded_user, start_network
from tests.support.server import Server, TestUser
from tests.support.store import make_catalog

pytestmark = pytest.mark.timeout(600)

CARD = {"card_number": "4242424242424242", "card_expiry": "12/39", "card_cvc": "123"}


@pytest.fixture(scope="module")
def net(backend, tmp_path_factory):
    network, cleanup = start_network(backend, tmp_path_factory.mktemp(f"open-store-{backend}"))
    try:
        network.catalog = make_catalog(network.a)
        for v in network.vendors:
            v.server.admin_cli("set-policy", "--min-tokens", "1")   # small grants activate (FIG 3's MT)
        yield network
    finally:
        cleanup()


@pytest.fixture
def app(qtbot, app_home, net):
    from desktop_app.api.worker import pending_jobs
    from desktop_app.app import Options, StoreApp

    store = StoreApp(Options(server=net.a.base_url))
    store.start()
    qtbot.waitUntil(lambda: store.ready, timeout=20000)
    dialog = getattr(store.window, "sign_in_dialog", None)
    if dialog is not None:
        dialog.reject()
    yield store
    qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=60000)
    store.window.close()
    store.window.deleteLater()
    store.stop()


def buy_by_api(server: Server, user: TestUser, **body) -> dict:
    r = server.api("POST", "/v1/open-token-purchases", user, headers={"Idempotency-Key": str(uuid.uuid4())},
                   json={"method": "card", "pin": user.pin, **CARD, **body})
    assert r.status_code == 201, r.text
    return r.json()


def open_wallet_of(net, user: TestUser) -> dict:
    """The user's open wallet as the MSP answers it (a session of the test's own)."""
    r = net.a.api("POST", "/v1/mall-assertions", user, json={"audience": "msp"})
    assert r.status_code == 201, r.text
    s = net.msp.post("/v1/sessions", json={"assertion": r.json()["assertion"]})
    assert s.status_code == 200, s.text
    r = net.msp.get("/v1/open-wallet", headers={"Authorization": f"Bearer {s.json()['token']}"})
    assert r.status_code == 200, r.text
    return r.json()


def wallet_panel(qtbot, app, user):
    sign_in(qtbot, app, user)
    window = app.window
    window.show_page(window.wallet)
    panel = window.wallet.open_panel
    qtbot.waitUntil(lambda: app.state.mall.mall is not None and panel.isVisible(), timeout=30000)
    return panel


def fill_card(dialog, pin):
    dialog.payment.card_number.setText(CARD["card_number"])
    dialog.payment.card_expiry.setText(CARD["card_expiry"])
    dialog.payment.card_cvc.setText(CARD["card_cvc"])
    dialog.payment.pin.setText(pin)


def test_buy_open_tokens_and_see_them_in_the_open_wallet(qtbot, app, net):
    user = funded_user(net.a, 10)
    panel = wallet_panel(qtbot, app, user)
    dialog = panel.open_buy()
    qtbot.waitUntil(lambda: dialog.offers is not None, timeout=20000)      # GET /v1/open-token-offers
    universal = next(i for i in range(dialog.kind.count()) if dialog.kind.itemData(i).kind == "universal")
    dialog.kind.setCurrentIndex(universal)
    dialog.tokens.setValue(1500)
    assert dialog.price.text() == "$15.00 (worth $15.00 in the mall)"
    fill_card(dialog, user.pin)
    with qtbot.waitSignal(dialog.purchased, timeout=30000) as got:
        dialog.buy_button.click()
    answer = got.args[0]
    assert (answer.kind, answer.tokens, answer.price_cents, answer.status) == ("universal", 1500, 1500, "issued")
    # the panel reads the open wallet at the MSP through its own MSP session
    qtbot.waitUntil(lambda: panel.lots.rowCount() == 1 and panel.activity.rowCount() == 1, timeout=30000)
    row = [panel.lots.data(panel.lots.index(0, c)) for c in range(5)]
    assert row == ["Universal", "every store of the mall", "never", "1,500", "$15.00"]
    assert panel.total.text() == "Open tokens worth $15.00 (one open token is $0.01)"
    assert panel.activity.data(panel.activity.index(0, 3)) == "+1,500"
    assert [y for _x, y in panel.chart.points()] == [1500.0]
    assert open_wallet_of(net, user)["value_cents"] == 1500          # the MSP's own answer agrees


def test_a_gift_certificate_shows_its_expiry_then_is_given_by_name(qtbot, app, net):
    from datetime import UTC, datetime, timedelta
    buyer, friend = funded_user(net.a, 10), funded_user(net.a, 10)
    panel = wallet_panel(qtbot, app, buyer)
    dialog = panel.open_buy(gift=True)
    qtbot.waitUntil(lambda: dialog.offers is not None, timeout=20000)
    days = dialog.offers.gift_certificate.expires_in_days
    assert f"{days:,} days after the purchase" in dialog.expiry.text()       # shown before purchase
    dialog.value.setValue(25.0)
    fill_card(dialog, buyer.pin)
    with qtbot.waitSignal(dialog.purchased, timeout=30000) as got:
        dialog.buy_button.click()
    sold = got.args[0]
    assert sold.status == "issued" and sold.gift_certificate is not None and sold.gift_certificate.code
    expires = sold.gift_certificate.expires_at
    assert abs(expires - (datetime.now(UTC) + timedelta(days=days))) < timedelta(days=1)
    assert dialog.code.isVisible() and dialog.code.text() == sold.gift_certificate.code
    dialog.close()

    # a refresh sent while the purchase was being issued lists it pending; wait for the one after
    qtbot.waitUntil(lambda: any(p.id == sold.id and p.status == "issued" for p in panel.purchases), timeout=30000)
    give = panel.open_give()
    assert give.certificate.count() == 1 and give.give_button.isEnabled()
    give.username.setText(friend.username)
    give.full_name.setText("Someone Else")
    give.pin.setText(buyer.pin)
    give.give_button.click()
    qtbot.waitUntil(lambda: not give.busy, timeout=30000)
    assert "username and full name" in give.banner.text()                 # FIG 11: both must match
    assert open_wallet_of(net, friend)["lots"] == []
    give.full_name.setText(friend.full_name)
    with qtbot.waitSignal(give.given, timeout=30000) as given:
        give.give_button.click()
    assert given.args[0].status == "given"
    lots = open_wallet_of(net, friend)["lots"]
    assert [(lot["kind"], lot["tokens"]) for lot in lots] == [("gift_certificate", 2500)]


def test_redeem_a_code_and_a_wrong_one_is_refused(qtbot, app, net):
    giver, user = funded_user(net.a, 10), funded_user(net.a, 10)
    code = buy_by_api(net.a, giver, kind="gift_certificate", value_cents=1000)["gift_certificate"]["code"]
    panel = wallet_panel(qtbot, app, user)
    dialog = panel.open_redeem()
    dialog.code.setText("AAAA-BBBB-CCCC-DDDD")
    dialog.redeem_button.click()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=30000)
    assert dialog.banner.text() == "That code is not right. Check it and try again."
    dialog.code.setText(code.lower())                            # the MSP ignores case and dashes
    with qtbot.waitSignal(dialog.redeemed, timeout=30000) as got:
        dialog.redeem_button.click()
    assert got.args[0].moved and got.args[0].lot.tokens == 1000
    qtbot.waitUntil(lambda: panel.lots.rowCount() == 1, timeout=30000)
    assert panel.lots.data(panel.lots.index(0, 0)) == "Gift certificate"
    assert [lot["tokens"] for lot in open_wallet_of(net, user)["lots"]] == [1000]


def _order_page(qtbot, app, net, user, product="perm"):
    sign_in(qtbot, app, user)
    state, window = app.state, app.window
    try:
        qtbot.waitUntil(lambda: state.catalog_loaded and state.device_id is not None
                        and state.mall.mall is not None, timeout=30000)
    except Exception:
        raise AssertionError(f"catalog {state.catalog_loaded}, device {state.device_id}, mall {state.mall.mall}, "
                             f"banner {window.banner.text()!r}") from None
    product_id = net.catalog.products[product]
    found = state.find_offer(net.catalog.offers[(product, "purchase")])
    assert found is not None and found[0].id == product_id
    window.show_page(window.orders)
    page = window.orders
    page.add(*found)
    return page


def test_an_order_paid_with_closed_then_open_tokens_shows_the_split_and_the_kinds(qtbot, app, net):
    user = funded_user(net.a, 40)
    buy_by_api(net.a, user, kind="universal", tokens=5000)
    page = _order_page(qtbot, app, net, user)
    details = app.window.store.details                              # the store says which kinds pay
    details.show_product(app.state.product(net.catalog.products["perm"]))
    qtbot.waitUntil(lambda: details.pays_with.isVisibleTo(details), timeout=30000)
    assert details.pays_with.text() == ("Pays with this store's tokens, or open tokens: Gift certificate, "
                                        "Universal")
    assert page.payment_choice.isVisibleTo(page)                   # in a mall: open tokens can pay
    page.payment_choice.setCurrentIndex(page.payment_choice.findData("auto"))
    page.start_order()
    dialog = page.confirm_dialog
    assert dialog.payment == "auto"
    qtbot.waitUntil(lambda: dialog.quote is not None, timeout=30000)
    # 100 tokens: 40 of A's own, the other 60 at A's token price in open units, planned by the MSP
    units = dialog.quote.open_units
    assert dialog.quote.closed_tokens == 40 and units and units > 0
    assert dialog.split.text().splitlines() == ["This store's tokens: 40", f"Universal: {units:,} open tokens"]
    with qtbot.waitSignal(page.orderPlaced, timeout=60000) as placed:
        dialog.confirm_button.click()
    receipt = placed.args[0]["answer"]
    assert receipt.status == "completed" and receipt.payment == "auto"
    assert sorted((p.kind, p.tokens) for p in receipt.paid) == [("closed", 40), ("universal", units)]
    assert "Paid with 40 of this store's tokens, " + f"{units:,} open tokens (Universal)." in page.banner.text()
    assert [lot["tokens"] for lot in open_wallet_of(net, user)["lots"]] == [5000 - units]


def test_short_of_open_tokens_the_dialog_offers_the_kinds_that_would_help(qtbot, app, net):
    user = funded_user(net.a, 10)
    page = _order_page(qtbot, app, net, user)
    page.set_payment("open")
    page.start_order()
    dialog = page.confirm_dialog
    qtbot.waitUntil(lambda: dialog.quote is not None, timeout=30000)
    assert "you are short of" in dialog.split.text()
    dialog.confirm_button.click()
    qtbot.waitUntil(lambda: getattr(page, "open_shortage_dialog", None) is not None, timeout=60000)
    short = page.open_shortage_dialog
    assert short.short_units > 0 and "universal" in short.helpful_kinds
    short.buy_buttons["universal"].click()
    buy = page.buy_open_dialog
    qtbot.waitUntil(lambda: buy.offers is not None, timeout=20000)
    assert buy.offer().kind == "universal" and buy.tokens.value() == short.short_units
    assert open_wallet_of(net, user)["lots"] == []                 # nothing was held or taken


def test_the_open_replies_are_the_servers_own(net):
    """Every open-token answer the storefront reads, taken from the live servers: it parses with
    nothing unknown or missing, and the reply shapes agree with both OpenAPI documents (the
    vendor's and the MSP's: field names and required fields; the 402's fields documented)."""
    from desktop_app.api import replies as r
    from desktop_app.wire import parse
    from tests.desktop_app.test_replies import _response_schema, compare, unknown_fields

    user, friend = funded_user(net.a, 10), funded_user(net.a, 10)
    bought = buy_by_api(net.a, user, kind="universal", tokens=700)
    gift = buy_by_api(net.a, user, kind="gift_certificate", value_cents=500)
    other = buy_by_api(net.a, user, kind="gift_certificate", value_cents=300)
    given = net.a.api("POST", f"/v1/gift-certificates/{gift['operation_id']}/give", user,
                      headers={"Idempotency-Key": str(uuid.uuid4())},
                      json={"username": friend.username, "full_name": friend.full_name, "pin": user.pin})
    assert given.status_code == 200, given.text
    assertion = net.a.api("POST", "/v1/mall-assertions", friend, json={"audience": "msp"}).json()["assertion"]
    session = net.msp.post("/v1/sessions", json={"assertion": assertion})
    auth = {"Authorization": f"Bearer {session.json()['token']}"}
    redeemed = net.msp.post("/v1/open-wallet/redeem", headers=auth, json={"code": other["gift_certificate"]["code"]})
    assert redeemed.status_code == 200, redeemed.text
    captured = [
        (r.OpenTokenOffers, net.a.api("GET", "/v1/open-token-offers").json()),
        (r.OpenTokenPurchase, bought), (r.OpenTokenPurchase, gift),
        (list[r.OpenTokenPurchase], net.a.api("GET", "/v1/open-token-purchases", user).json()),
        (r.GiftGiven, given.json()), (r.Session, session.json()), (r.Redeemed, redeemed.json()),
        (r.OpenWallet, net.msp.get("/v1/open-wallet", headers=auth).json()),
        (list[r.OpenActivityLine], net.msp.get("/v1/open-wallet/activity", headers=auth).json()),
    ]
    problems = []
    for shape, data in captured:
        parse(shape, data)
        problems += unknown_fields(shape, data, getattr(shape, "__name__", str(shape)))
    # a purchase's lots are "the MSP's answer, as it gave it" (its schema allows more fields than
    # it documents); the storefront reads none of them
    problems = [p for p in problems if not re.search(r"\.lots\[\d+\]\.(asset|issuer|expires_at)$", p)]
    assert problems == [], "\n".join(problems)
    wallet = parse(r.OpenWallet, captured[7][1])
    assert sorted(lot.tokens for lot in wallet.lots) == [300, 500]          # given and redeemed
    assert {c.held for c in wallet.gift_certificates} == {True}

    vendor, msp = net.a.api("GET", "/openapi.json").json(), net.msp.get("/openapi.json").json()
    for doc, shape, method, path, status in [
            (vendor, r.OpenTokenOffers, "get", "/v1/open-token-offers", "200"),
            (vendor, r.OpenTokenPurchase, "post", "/v1/open-token-purchases", "201"),
            (vendor, list[r.OpenTokenPurchase], "get", "/v1/open-token-purchases", "200"),
            (vendor, r.GiftGiven, "post", "/v1/gift-certificates/{operation_id}/give", "200"),
            (msp, r.Session, "post", "/v1/sessions", "200"),
            (msp, r.OpenWallet, "get", "/v1/open-wallet", "200"),
            (msp, list[r.OpenActivityLine], "get", "/v1/open-wallet/activity", "200"),
            (msp, r.Redeemed, "post", "/v1/open-wallet/redeem", "200")]:
        problems += compare(doc, shape, _response_schema(doc, method, path, status), f"{method} {path}", exact=True)
    assert problems == [], "\n".join(problems)


def test_the_open_shortage_is_documented(net):
    from desktop_app.api import replies as r
    from tests.desktop_app.test_replies import _response_schema, compare

    vendor = net.a.api("GET", "/openapi.json").json()
    problems = compare(vendor, r.OpenShort, _response_schema(vendor, "post", "/v1/orders", "402"), "402", exact=False)
    assert problems == [], "\n".join(problems)


def test_an_order_waiting_for_the_mall_completes_once_with_the_same_key(qtbot, app, net):
    """The MSP is down: the store answers 202 (pending); the dialog says so and keeps its key;
    with the MSP back, "Check again" ends with the order completed, paid once."""
    user = funded_user(net.a, 10)
    buy_by_api(net.a, user, kind="universal", tokens=5000)
    page = _order_page(qtbot, app, net, user)
    page.set_payment("auto")
    page.start_order()
    dialog = page.confirm_dialog
    qtbot.waitUntil(lambda: dialog.quote is not None, timeout=30000)
    units, key = dialog.quote.open_units, dialog.idempotency_key
    net.msp.stop()
    try:
        dialog.confirm_button.click()
        qtbot.waitUntil(lambda: not dialog.placing, timeout=90000)
        assert "waiting for the mall" in dialog.banner.text() and dialog.confirm_button.text() == "&Check again"
        assert dialog.idempotency_key == key and dialog.isVisible()
    finally:
        net.msp.start()
    placed = []
    page.orderPlaced.connect(placed.append)

    def check_again() -> bool:
        if not placed and not dialog.placing and dialog.isVisible():
            dialog.confirm_button.click()
        return bool(placed)

    qtbot.waitUntil(check_again, timeout=180000)
    receipt = placed[0]["answer"]
    assert receipt.status == "completed" and dialog.idempotency_key == key
    assert sorted((p.kind, p.tokens) for p in receipt.paid) == [("closed", 10), ("universal", units)]
    assert [lot["tokens"] for lot in open_wallet_of(net, user)["lots"]] == [5000 - units]      # taken once
