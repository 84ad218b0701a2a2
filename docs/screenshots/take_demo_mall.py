"""Take the Store page browsing Mall B of the demo mall, at 1280x800, for docs/user-guide.md.

    xvfb-run -s "-screen 0 1280x800x24" .venv/bin/python docs/screenshots/take_demo_mall.py   # into docs/screenshots/

The storefront with no server configured starts the demo mall itself (server_stub/demo_mall.py:
the MSP and four vendors, about 35 s the first time) and signs in as its home user at Mall A1;
this opens Mall B from the Malls page and saves `store-demo-mall-b.png`. It fails when the
product grid needs a horizontal scroll bar (the grid must fit the window at 1280x800).
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
    finally:
        settle()
        store.window.close()
        store.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
