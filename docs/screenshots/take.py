"""Take the storefront's screenshots (offscreen) for docs/user-guide.md and the README.

    .venv/bin/python docs/screenshots/take.py            # into docs/screenshots/
    QT_SCALE_FACTOR=2 .venv/bin/python docs/screenshots/take.py /tmp/shots   # high-DPI check

Starts a real demo server (temp SQLite) and drives the real app as the demo user:
store, order list (FIG 8), confirmation (FIG 9), library, wallet.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent   # or another folder
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TOKENRENT_ARGON2_MEMORY_KIB", "8192")
os.environ.setdefault("TOKENRENT_ARGON2_TIME_COST", "1")


def main() -> int:
    from PySide6.QtWidgets import QApplication, QComboBox, QPushButton
    from tests.support.server import start_server

    tmp = Path(tempfile.mkdtemp(prefix="tr-shots-"))
    os.environ["TOKENRENT_HOME"] = str(tmp / "home")
    os.environ["LICENSE_AGENT_HOME"] = str(tmp / "agent")
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    server, cleanup = start_server("sqlite", tmp / "server", demo=True)
    app = QApplication.instance() or QApplication([])
    from desktop_app.api.worker import pending_jobs
    from desktop_app.app import Options, StoreApp

    def wait(cond, timeout=60.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            app.processEvents()
            if cond():
                return
            time.sleep(0.02)
        raise TimeoutError(cond)

    def settle():
        wait(lambda: pending_jobs() == 0)
        for _ in range(10):
            app.processEvents()

    def shot(widget, name):
        settle()
        widget.grab().save(str(OUT / f"{name}.png"))
        print("saved", OUT / f"{name}.png")

    store = StoreApp(Options(server=server.base_url))
    try:
        store.start()
        window, state = store.window, store.state
        window.resize(1240, 780)
        wait(lambda: store.ready)
        dialog = window.sign_in_dialog
        dialog.username.setText("demo")
        dialog.password.setText("demo-pass-1")
        shot(dialog, "sign-in")
        dialog.submit()
        wait(lambda: state.me is not None and state.device_id is not None)
        window.banner.clear_message()

        def product(name):
            return next(p for p in state.products if p["name"] == name)

        # store: FIG 7's category, Software D selected
        cat_model = window.store.categories
        row = next(r for r in range(cat_model.rowCount()) if cat_model.index(r).data() == "Document Raster Editing")
        window.store.category_view.setCurrentIndex(cat_model.index(row))
        window.open_product(product("Software D")["id"])
        window.store.category_view.setCurrentIndex(cat_model.index(row))
        shot(window, "store")

        def add(name, tier=None):
            p = product(name)
            window.open_product(p["id"])
            offer = next(o for o in p["offers"] if o["kind"] != "convert")
            if tier:
                combo = window.store.details.findChild(QComboBox, f"tiers_{offer['id']}")
                combo.setCurrentIndex(next(i for i in range(combo.count()) if combo.itemText(i).startswith(tier)))
            next(b for b in window.store.details.findChildren(QPushButton)
                 if b.objectName() == f"add_{offer['id']}").click()

        add("Software A")
        add("Software D", "1,000 processings")
        window.show_page(window.orders)
        orders = window.orders
        d_row = next(r for r in range(orders.model.rowCount()) if orders.model.line(r).product["name"] == "Software D")
        orders.model.set_installed(d_row, True)
        window.banner.clear_message()
        shot(window, "order-list")
        orders.order_button.click()
        confirm = orders.confirm_dialog
        wait(lambda: confirm.labels["left"].text() == "320")
        shot(confirm, "order-confirm")
        confirm.confirm_button.click()
        wait(lambda: "ORDER CONFIRMED" in orders.banner.text())
        window.show_page(window.library)
        wait(lambda: any(e.name == "Software A" and e.installed for e in state.entries))
        window.library.select_product(product("Software D")["id"])
        window.banner.clear_message()
        shot(window, "library")
        window.show_page(window.wallet)
        wait(lambda: window.wallet.ledger.rowCount() >= 2)
        shot(window, "wallet")
        buy = window.wallet.open_buy()
        buy.amount.setCurrentIndex(buy.amount.count() - 1)
        shot(buy, "buy-tokens")
        buy.reject()
    finally:
        settle()
        store.window.close()
        store.stop()
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
