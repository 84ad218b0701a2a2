"""Take the storefront's screenshots (offscreen) for docs/user-guide.md and the README.

    .venv/bin/python docs/screenshots/take.py            # into docs/screenshots/
    QT_SCALE_FACTOR=2 .venv/bin/python docs/screenshots/take.py /tmp/shots   # high-DPI check
    .venv/bin/python docs/screenshots/take.py --hidpi    # only store-hidpi.png: the store at scale 2,
                                                         # 1366x728 logical (a 2732x1536 screen at 200 %)

Starts a real demo server (temp SQLite) and drives the real app as the demo user:
store, order list (FIG 8), confirmation (FIG 9), library, a stopped download, wallet, buy
tokens, transfer (FIG 11), short of tokens (FIG 10), settings, off-line.
"""
from __future__ import annotations

import os
import sys
import time

from shots import out_dir, scratch_home, shooter, sign_in, storefront   # first: the path and environment

HIDPI = "--hidpi" in sys.argv[1:]
OUT = out_dir([a for a in sys.argv[1:] if a != "--hidpi"])   # or another folder
if HIDPI:
    os.environ["QT_SCALE_FACTOR"] = "2"          # before any QApplication exists


def main() -> int:
    from PySide6.QtWidgets import QComboBox, QPushButton
    from tests.support.server import start_server

    tmp = scratch_home("tr-shots-")
    server, cleanup = start_server("sqlite", tmp / "server", demo=True)
    from tests.support.qt_script import settle, wait_until as wait

    shot = shooter(OUT)
    with storefront(server.base_url, (1366, 728) if HIDPI else (1240, 780), cleanup) as store:
        window, state = store.window, store.state
        sign_in(store, "demo", "demo-pass-1", before_submit=None if HIDPI else lambda d: shot(d, "sign-in"))

        def product(name):
            return next(p for p in state.products if p.name == name)

        # store: FIG 7's category, Software D selected
        cat_model = window.store.categories
        row = next(r for r in range(cat_model.rowCount()) if cat_model.index(r).data() == "Document Raster Editing")
        window.store.category_view.setCurrentIndex(cat_model.index(row))
        window.open_product(product("Software D").id)
        window.store.category_view.setCurrentIndex(cat_model.index(row))
        if HIDPI:
            shot(window, "store-hidpi")
            return 0
        shot(window, "store")

        def add(name, tier=None):
            p = product(name)
            window.open_product(p.id)
            offer = next(o for o in p.offers if o.kind != "convert")
            if tier:
                combo = window.store.details.findChild(QComboBox, f"tiers_{offer.id}")
                combo.setCurrentIndex(next(i for i in range(combo.count()) if combo.itemText(i).startswith(tier)))
            next(b for b in window.store.details.findChildren(QPushButton)
                 if b.objectName() == f"add_{offer.id}").click()

        add("Software A")
        add("Software D", "1,000 processings")
        window.show_page(window.orders)
        orders = window.orders
        d_row = next(r for r in range(orders.model.rowCount()) if orders.model.line(r).product.name == "Software D")
        orders.model.set_installed(d_row, True)
        window.banner.clear_message()
        orders.table.edit(orders.model.index(d_row, orders.model.COL_TIER))   # the tier choices, open
        shot(window, "order-list")
        orders.table.setFocus()
        orders.order_button.click()
        confirm = orders.confirm_dialog
        wait(lambda: confirm.labels["left"].text().startswith("320 tokens"))
        shot(confirm, "order-confirm")
        confirm.confirm_button.click()
        wait(lambda: "ORDER CONFIRMED" in orders.banner.text())
        window.show_page(window.library)
        wait(lambda: any(e.name == "Software A" and e.installed for e in state.entries))
        wait(lambda: any(e.name == "Software D" and e.remaining == 1000 for e in state.entries))

        # some use of Software D over a few seconds, through the agent (as the program would)
        d_id = str(product("Software D").id)
        for n in (120, 60, 200, 90):
            time.sleep(1.5)
            state.agent.call(["consume", d_id, str(n), "--json"])
            state.refresh_library()
            settle()
        window.library.select_product(d_id)
        window.banner.clear_message()
        window.library.banner.clear_message()
        shot(window, "library")

        # a download that stopped half-way (paused, connection lost or app closed) and goes on
        b = product("Software B")
        b_offer = b.offer_of_kind("purchase")
        answer = state.api.place_order([{"offer_id": b_offer.id}], state.device_id, [], "shots-b")
        delivery = answer.deliveries[0]
        from desktop_app.library.download import Download, DownloadPaused
        half = Download(state.api.url(delivery.download_url), window.library.downloads.destination(b.id),
                        expected_sha256=delivery.sha256, expected_size=delivery.size,
                        headers=state.api.auth_headers(), chunk_size=256)
        half.on_progress = lambda p: half.pause() if p.received >= delivery.size * 0.45 else None
        try:
            half.run()
        except DownloadPaused:
            pass
        state.cache.data.setdefault("downloads", {})[str(b.id)] = {
            "url": delivery.download_url, "sha256": delivery.sha256, "size": delivery.size}
        state.refresh_library()
        settle()
        window.library.select_product(b.id)
        settle()
        shot(window, "download")

        # wallet: a card purchase and a transfer a moment later, so the chart has steps
        other = server.new_user(full_name="Alex Doe")
        window.show_page(window.wallet)
        time.sleep(1.5)
        buy = window.wallet.open_buy()
        buy.tokens.setValue(300)
        buy.card_number.setText("4242424242424242")
        buy.card_expiry.setText("12/39")
        buy.card_cvc.setText("123")
        buy.buy_button.click()
        wait(lambda: state.available_tokens == 370)
        time.sleep(1.5)
        transfer = window.wallet.open_transfer()
        transfer.to_username.setText(other.username)
        transfer.to_full_name.setText(other.full_name)
        transfer.tokens.setValue(50)
        transfer.pin.setText("1234")
        shot(transfer, "transfer")
        transfer.send_button.click()
        wait(lambda: state.available_tokens == 320)
        wait(lambda: window.wallet.ledger.rowCount() >= 4)
        window.wallet.banner.clear_message()
        shot(window, "wallet")
        buy = window.wallet.open_buy()
        buy.amount.setCurrentIndex(buy.amount.count() - 1)
        shot(buy, "buy-tokens")
        buy.reject()

        # short of tokens (FIG 10): 600 tokens of programs with 320 in the wallet
        add("Software C")
        add("DraftCAD Lite")
        window.show_page(orders)
        wait(lambda: orders.model.required_tokens() > state.available_tokens)
        orders.order_button.click()
        orders.confirm_dialog.confirm_button.click()
        wait(lambda: getattr(orders, "shortage_dialog", None) is not None and orders.shortage_dialog.isVisible())
        shot(orders.shortage_dialog, "shortage")
        orders.shortage_dialog.reject()
        orders.model.clear()

        window.show_page(window.settings_page)
        wait(lambda: window.settings_page.agent_health.text() != "…")
        window.banner.clear_message()
        shot(window, "settings")

        # off-line: the store server goes away; the library still works
        server.stop()
        window.show_page(window.library)
        wait(lambda: state.offline)
        window.library.select_product(d_id)
        window.banner.clear_message()
        window.library.banner.clear_message()
        shot(window, "offline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
