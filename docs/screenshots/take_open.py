"""Take the open tokens' screenshots for docs/user-guide.md ("Open tokens and gift certificates").

    xvfb-run -s "-screen 0 1280x800x24" .venv/bin/python docs/screenshots/take_open.py   # into docs/screenshots/

Starts a real MSP and two demo vendors (tests/support/network.py, temp SQLite), gives the MSP a
brand (Acme, made by Mall A, Software A on its list) and a group (north: Mall A and Mall B), and
drives the real storefront as a user of Mall A: open tokens bought at the store, a gift
certificate redeemed by its code, the wallet's open panel, the gift certificate dialog, an order
paid with the store's tokens then open tokens (the split before confirming), and the shortage
dialog with the kinds that would help.
"""
from __future__ import annotations

import sys
import time
import uuid

from shots import out_dir, scratch_home, shooter, sign_in, storefront   # first: the path and environment

OUT = out_dir(sys.argv[1:])
CARD = {"card_number": "4242424242424242", "card_expiry": "12/39", "card_cvc": "123"}


def main() -> int:
    from tests.support.network import funded_user, start_network

    tmp = scratch_home("tr-open-shots-")
    net, cleanup = start_network("sqlite", tmp / "net", demo=True)
    from tests.support.qt_script import wait_until as wait

    shot = shooter(OUT)

    def buy(user, **body):
        r = net.a.api("POST", "/v1/open-token-purchases", user, headers={"Idempotency-Key": str(uuid.uuid4())},
                      json={"method": "card", "pin": user.pin, **CARD, **body})
        assert r.status_code == 201, r.text
        return r.json()

    products = {p["name"]: p["id"] for p in net.a.api("GET", "/v1/products").json()}
    net.msp.admin("brands-add", "acme", "Acme", net.a_id, "--discount-bp", "1000")
    net.msp.admin("brand-products-add", "acme", net.a_id, str(products["Software A"]))
    for member in (net.a_id, net.b_id):
        net.msp.admin("group-add", "north", member)
    net.msp.admin("group-discount", "north", "500")
    for v in net.vendors:
        v.server.admin_cli("refresh-directory")
        v.server.admin_cli("set-policy", "--min-tokens", "1")   # a small wallet is active (FIG 3's MT)

    user, friend = funded_user(net.a, 40), funded_user(net.a, 10)
    buy(user, kind="universal", tokens=3000)
    time.sleep(1.2)                      # steps a moment apart, so the chart shows them
    buy(user, kind="manufacturer", issuer="acme", tokens=2000)
    code = buy(friend, kind="gift_certificate", value_cents=2500)["gift_certificate"]["code"]
    with storefront(net.a.base_url, (1280, 800), cleanup) as store:
        window, state = store.window, store.state
        sign_in(store, user.username, user.password)

        # the wallet's open panel, after redeeming a certificate a friend bought
        window.show_page(window.wallet)
        panel = window.wallet.open_panel
        try:
            wait(lambda: panel.isVisible() and panel.lots.rowCount() == 2)
        except TimeoutError:
            print("panel", panel.isVisible(), panel.lots.rowCount(), panel.banner.text(), window.banner.text())
            raise
        time.sleep(1.2)
        redeem = panel.open_redeem()
        redeem.code.setText(code)
        redeem.redeem_button.click()
        wait(lambda: panel.lots.rowCount() == 3 and panel.activity.rowCount() == 3)
        window.wallet.banner.clear_message()
        panel.banner.clear_message()
        window.wallet.open_panel.setMinimumHeight(330)
        shot(window, "wallet-open")

        gift = panel.open_buy(gift=True)
        wait(lambda: gift.offers is not None)
        gift.value.setValue(25.0)
        gift.for_someone.setChecked(True)
        gift.recipient_username.setText(friend.username)
        gift.recipient_full_name.setText(friend.full_name)
        shot(gift, "open-buy-gift")
        gift.reject()

        # an order of Software A (Acme's): the store's 40 tokens, then open tokens as the MSP plans
        def add(name):
            p = next(p for p in state.products if p.name == name)
            offer = next(o for o in p.offers if o.kind == "purchase")
            window.orders.add(p, offer)

        window.show_page(window.orders)
        orders = window.orders
        add("Software A")
        wait(lambda: orders.payment_choice.isVisible())
        orders.payment_choice.setCurrentIndex(orders.payment_choice.findData("auto"))
        orders.start_order()
        confirm = orders.confirm_dialog
        wait(lambda: confirm.quote is not None)
        shot(confirm, "order-open-confirm")
        confirm.confirm_button.click()
        wait(lambda: "ORDER CONFIRMED" in orders.banner.text())
        window.banner.clear_message()
        shot(window, "order-open-paid")

        # short of open tokens: more than the wallet holds, open tokens only
        for name in ("Software C", "DraftCAD Lite"):
            add(name)
        orders.set_payment("open")
        orders.start_order()
        orders.confirm_dialog.confirm_button.click()
        wait(lambda: getattr(orders, "open_shortage_dialog", None) is not None
             and orders.open_shortage_dialog.isVisible())
        shot(orders.open_shortage_dialog, "open-shortage")
        orders.open_shortage_dialog.reject()
    return 0


if __name__ == "__main__":
    sys.exit(main())
