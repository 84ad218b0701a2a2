"""Take the mall's screenshots for docs/user-guide.md ("Shopping across the mall").

    xvfb-run -s "-screen 0 1280x800x24" .venv/bin/python docs/screenshots/take_mall.py   # into docs/screenshots/

Starts a real MSP and two demo vendors (tests/support/network.py, temp SQLite), signs a
funded user of Mall A in to the real storefront and takes: the Malls page, the exchange
dialog with its quote, the wallet after the exchange, and Mall B's store browsed from A.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(sys.argv[1]) if sys.argv[1:] else Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TOKENRENT_ARGON2_MEMORY_KIB", "8192")
os.environ.setdefault("TOKENRENT_ARGON2_TIME_COST", "1")


def main() -> int:
    from PySide6.QtWidgets import QApplication
    from tests.support.network import funded_user, start_network

    tmp = Path(tempfile.mkdtemp(prefix="tr-mall-shots-"))
    os.environ["TOKENRENT_HOME"] = str(tmp / "home")
    os.environ["LICENSE_AGENT_HOME"] = str(tmp / "agent")
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    net, cleanup = start_network("sqlite", tmp / "net", demo=True)
    app = QApplication.instance() or QApplication([])  # noqa: F841 (alive for the whole run)
    from desktop_app.app import Options, StoreApp
    from tests.support.qt_script import settle, wait_until as wait

    def shot(widget, name):
        settle()
        OUT.mkdir(parents=True, exist_ok=True)
        if not widget.grab().save(str(OUT / f"{name}.png")):
            raise RuntimeError(f"could not save {OUT / f'{name}.png'}")
        print("saved", OUT / f"{name}.png")

    user = funded_user(net.a, 600)
    store = StoreApp(Options(server=net.a.base_url))
    try:
        store.start()
        window, state = store.window, store.state
        window.resize(1280, 800)
        wait(lambda: store.ready)
        dialog = window.sign_in_dialog
        dialog.username.setText(user.username)
        dialog.password.setText(user.password)
        dialog.submit()
        wait(lambda: state.me is not None)
        window.banner.clear_message()
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
    finally:
        settle()
        store.window.close()
        store.stop()
        cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
