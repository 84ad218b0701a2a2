"""Take the Store page browsing Mall B of the demo mall, at 1280x800, for docs/user-guide.md.

    xvfb-run -s "-screen 0 1280x800x24" .venv/bin/python docs/screenshots/take_demo_mall.py   # into docs/screenshots/

The storefront with no server configured starts the demo mall itself (server_stub/demo_mall.py:
the MSP and four vendors, about 35 s the first time) and signs in as its home user at Mall A1;
this opens Mall B from the Malls page and saves `store-demo-mall-b.png`. It fails when the
product grid needs a horizontal scroll bar (the grid must fit the window at 1280x800). Then it
exchanges Token-A1 for Token-B, buys Mall B's "Word Forge" and the home "Software C", and saves the
Library with both stores' licenses (`library-mall.png`): in the demo mall both are product 3,
each of its own store.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(sys.argv[1]) if sys.argv[1:] else Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")


def main() -> int:
    from PySide6.QtWidgets import QApplication
    from tests.support.qt_script import settle, wait_until as wait

    tmp = Path(tempfile.mkdtemp(prefix="tr-demo-mall-shot-"))
    os.environ["TOKENRENT_HOME"] = str(tmp / "home")
    os.environ["LICENSE_AGENT_HOME"] = str(tmp / "agent")
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    app = QApplication.instance() or QApplication([])  # noqa: F841 (alive for the whole run)
    from desktop_app.app import Options, StoreApp

    store = StoreApp(Options())
    try:
        store.start()
        window, state = store.window, store.state
        window.resize(1280, 800)
        window.show()
        wait(lambda: state.me is not None, timeout=240)
        window.show_page(window.malls)
        wait(lambda: state.mall.mall is not None and len(state.mall.mall.members) >= 4, timeout=120)
        mall_b = next(m for m in state.mall.mall.members if m.name == "Mall B")
        wait(lambda: state.mall.members.balance(mall_b.member_id) is not None, timeout=120)
        window.malls.select(mall_b.member_id)
        window.malls.browse_button.click()
        wait(lambda: window.store.browsed is not None and window.store.browsed.member.member_id == mall_b.member_id)
        product = next(p for p in window.store.browsed.products if p.name == "Star Harbor")
        window.store.show_product(product.id)
        window.banner.clear_message()
        settle()
        scroll = window.store.table.horizontalScrollBar()
        OUT.mkdir(parents=True, exist_ok=True)
        target = OUT / "store-demo-mall-b.png"
        if not window.grab().save(str(target)):
            raise RuntimeError(f"could not save {target}")
        print("saved", target, "window", window.width(), "x", window.height(),
              "horizontal scroll range", scroll.maximum())
        if scroll.maximum() > 0:
            print("the product grid scrolls sideways", file=sys.stderr)
            return 1
        library_shot(window, state, mall_b, wait, settle)
    finally:
        settle()
        store.window.close()
        store.stop()
    return 0


def library_shot(window, state, mall_b, wait, settle) -> None:
    """Token-B by an exchange, Mall B's Word Forge bought there, then the Library."""
    window.show_page(window.malls)
    window.malls.select(mall_b.member_id)
    exchange = window.malls.open_exchange(tokens=60)
    exchange.quote_button.click()
    wait(lambda: exchange.quote is not None)
    exchange.confirm_button.click()
    wait(lambda: not state.mall.exchanges.pending() and state.mall.exchanges.rowCount() >= 1)
    exchange.close()
    wait(lambda: (state.mall.members.balance(mall_b.member_id) or None) is not None
         and state.mall.members.balance(mall_b.member_id).tokens >= 80, timeout=120)
    window.browse_member(mall_b)
    wait(lambda: window.store.browsed is not None)
    product = next(p for p in window.store.browsed.products if p.name == "Word Forge")
    offer = product.offers[0]
    dialog = window.buy_at_member(mall_b, product, offer)
    wait(lambda: dialog.quote is not None and dialog.quote.shortage == 0)
    dialog.place()
    wait(lambda: any(e.issuer == mall_b.member_id and e.agent_known for e in state.entries), timeout=120)
    # and a home product of the same number (Software C, 10 uses; the home order flow has its own shots)
    from desktop_app.api.client import new_idempotency_key
    home = next(p for p in state.products if p.name == "Software C")
    receipt = state.api.place_order([{"offer_id": home.offers[-1].id, "quantity": 10}], state.device_id, [],
                                    new_idempotency_key())
    state.install_codes(receipt.deliveries)
    wait(lambda: any(e.issuer is None and e.agent_known for e in state.entries), timeout=120)
    window.banner.clear_message()
    window.show_page(window.library)
    settle()
    target = OUT / "library-mall.png"
    if not window.grab().save(str(target)):
        raise RuntimeError(f"could not save {target}")
    print("saved", target, [(e.name, e.issuer, e.product_id) for e in state.entries])


if __name__ == "__main__":
    raise SystemExit(main())
