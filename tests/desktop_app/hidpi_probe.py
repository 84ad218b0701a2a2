"""Run by test_hidpi.py in its own process, so QT_SCALE_FACTOR=2 is set before any
QApplication exists:

    QT_SCALE_FACTOR=2 python tests/desktop_app/hidpi_probe.py SERVER_URL USER PASSWORD OUT.json

Signs in to the real server, fills the order list, places an order (so the library has rows),
then shows each main screen in a window of 1366x728 logical pixels (a 2732x1536 screen at
200 %, less a 40 px panel) and writes, for every visible QLabel and QAbstractButton, whether it
is clipped: narrower or lower than its text needs, or cut off by the window edge or its parent.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SCREEN = (1366, 728)


def clipped(widget, window) -> str | None:
    """Why this visible label or button does not show all of itself, or None."""
    from PySide6.QtCore import QRect
    from PySide6.QtWidgets import QAbstractButton, QLabel
    w, h = widget.width(), widget.height()
    if isinstance(widget, QLabel):
        if not widget.text():
            return None
        if widget.wordWrap():
            need_w, need_h = 0, widget.heightForWidth(w)
        else:
            hint = widget.minimumSizeHint()
            need_w, need_h = hint.width(), hint.height()
    elif isinstance(widget, QAbstractButton):
        hint = widget.sizeHint()
        need_w, need_h = hint.width(), hint.height()
    else:
        return None
    if w < need_w or h < need_h:
        return f"{w}x{h} but needs {need_w}x{need_h}"
    # cut off by an ancestor (the window edge, a splitter, a group box)
    top_left = widget.mapTo(window, widget.rect().topLeft())
    shown = QRect(top_left, widget.size())
    parent = widget.parentWidget()
    while parent is not None and parent is not window:
        if parent.metaObject().className() == "QWidget" and parent.objectName() == "qt_scrollarea_viewport":
            return None    # inside a scroll area: scrolling shows the rest
        area = QRect(parent.mapTo(window, parent.rect().topLeft()), parent.size())
        if not area.contains(shown):
            return f"cut off by {parent.metaObject().className()} {parent.objectName()!r}"
        parent = parent.parentWidget()
    if not window.rect().contains(shown):
        return "cut off by the window edge"
    return None


def main() -> int:
    server_url, username, password, out = sys.argv[1:5]
    from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel
    app = QApplication.instance() or QApplication([])  # noqa: F841 (alive for the whole run)
    from desktop_app.app import Options, StoreApp

    from tests.support.qt_script import settle, wait_until as wait

    store = StoreApp(Options(server=server_url))
    report = {"screens": {}, "problems": []}
    try:
        store.start()
        window, state = store.window, store.state
        wait(lambda: store.ready)
        dialog = window.sign_in_dialog
        dialog.username.setText(username)
        dialog.password.setText(password)
        dialog.submit()
        wait(lambda: state.me is not None and state.device_id is not None)

        def product(name):
            return next(p for p in state.products if p.name == name)

        a = product("Software A")
        state.api.place_order([{"offer_id": a.offers[0].id}], state.device_id, [a.id], "hidpi-a")
        state.after_sign_in()
        settle()
        d = product("Software D")
        window.add_to_order(d, d.offer_of_kind("rent_processings"), 1)
        c = product("Software C")
        window.add_to_order(c, c.offer_of_kind("rent_uses"), 2)

        report["device_pixel_ratio"] = window.devicePixelRatio()
        hint = window.minimumSizeHint()
        report["minimum_size_hint"] = [hint.width(), hint.height()]
        window.resize(*SCREEN)
        screens = {"store": window.store, "order list": window.orders, "library": window.library,
                   "wallet": window.wallet, "settings": window.settings_page}
        for name, page in screens.items():
            window.show_page(page)
            if page is window.store:
                window.open_product(d.id)
            if page is window.library:
                window.library.select_product(a.id)
            settle()
            window.banner.clear_message()
            settle()
            report["window_size"] = [window.width(), window.height()]
            checked = 0
            for widget in [*window.findChildren(QLabel), *window.findChildren(QAbstractButton)]:
                if not widget.isVisibleTo(window) or widget.window() is not window:
                    continue
                if not (page.isAncestorOf(widget) or not window.pages.isAncestorOf(widget)):
                    continue     # on another page
                checked += 1
                why = clipped(widget, window)
                if why:
                    text = widget.text().replace("\n", " ")[:60]
                    report["problems"].append(f"{name}: {type(widget).__name__} "
                                              f"{widget.objectName() or text!r}: {why}")
            report["screens"][name] = checked
        if len(sys.argv) > 5:           # and a picture of the store at this scale
            window.show_page(window.store)
            window.open_product(d.id)
            settle()
            image = window.grab()
            report["grab_size"] = [image.width(), image.height()]
            image.save(sys.argv[5])
    finally:
        settle()
        store.window.close()
        store.stop()
        Path(out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
