"""Take the mall's screenshots for docs/user-guide.md ("Shopping across the mall").

    xvfb-run -s "-screen 0 1280x800x24" .venv/bin/python docs/screenshots/take_mall.py   # into docs/screenshots/

Starts a real MSP and two demo vendors (tests/support/network.py, temp SQLite), signs a
funded user of Mall A in to the real storefront and takes: the Malls page, the exchange
dialog with its quote, the wallet after the exchange, and Mall B's store browsed from A.
"""
from __future__ import annotations

import sys

from shots import out_dir, scratch_home, shooter, sign_in, storefront   # first: the path and environment

OUT = out_dir(sys.argv[1:])


def main() -> int:
    from tests.support.network import funded_user, start_network

    tmp = scratch_home("tr-mall-shots-")
    net, cleanup = start_network("sqlite", tmp / "net", demo=True)
    from tests.support.qt_script import wait_until as wait

    shot = shooter(OUT)
    user = funded_user(net.a, 600)
    with storefront(net.a.base_url, (1280, 800), cleanup) as store:
        window, state = store.window, store.state
        sign_in(store, user.username, user.password, device=False)
        window.show_page(window.malls)
        members = state.mall.members
        wait(lambda: members.rowCount() == 2 and members.balance(net.b_id) is not None)
        window.malls.select(net.b_id)
        shot(window, "malls")

        exchange = window.malls.open_exchange(tokens=200)
        exchange.quote_button.click()
        wait(lambda: exchange.quote is not None)
        shot(exchange, "exchange")
        exchange.confirm_button.click()
        wait(lambda: state.mall.exchanges.rowCount() == 1 and not state.mall.exchanges.pending())
        wait(lambda: members.balance(net.b_id) is not None and members.balance(net.b_id).tokens == 400)
        window.banner.clear_message()
        window.show_page(window.wallet)
        wait(lambda: window.wallet.mall_box.isVisible() and state.me.available_tokens == 400)
        shot(window, "wallet-mall")

        window.show_page(window.malls)
        window.malls.select(net.b_id)
        window.malls.browse_button.click()
        wait(lambda: window.store.browsed is not None)
        product = next(p for p in window.store.browsed.products if p.name == "Software D")
        window.store.show_product(product.id)
        shot(window, "store-mall-b")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
