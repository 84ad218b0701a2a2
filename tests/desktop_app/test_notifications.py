"""The "rental running low" desktop notification, with the real server and the real agent:
one notification per license per threshold crossing (not one per poll), naming the product
and carrying the way to the store (tokenrent://product/ID), through the backend the app
chose and reports (tray, else notify-send, else the in-app banner only)."""
from __future__ import annotations

import json
import os
import sys

from PySide6.QtWidgets import QSystemTrayIcon, QWidget

from desktop_app.notifier import Notifier, choose_backend
from desktop_app.widgets.common import Banner
from tests.desktop_app.conftest import close_app, sign_in


def recording_notify_send(folder, log):
    """A notify-send on PATH that writes down its arguments (the freedesktop tool is not
    installed here; this stands in for it at the process boundary, as a real program)."""
    folder.mkdir()
    script = folder / "notify-send"
    script.write_text(f"#!{sys.executable}\nimport json, sys\n"
                      f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    script.chmod(0o755)


def calls(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_running_low_notifies_once_per_threshold_crossing(qtbot, app_home, store_server, monkeypatch):
    log = app_home / "notify-send.log"
    recording_notify_send(app_home / "bin", log)
    monkeypatch.setenv("PATH", f"{app_home / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    from desktop_app.app import Options, StoreApp

    user = store_server.new_user(tokens=500)
    app = StoreApp(Options(server=store_server.base_url))
    app.AGENT_POLL_MS = 250                      # the agent is looked at often: many polls
    app.start()
    window, state = app.window, app.state
    try:
        assert not QSystemTrayIcon.isSystemTrayAvailable()      # offscreen: no tray
        notifier = window.notifier
        assert notifier.backend == "notify-send"
        qtbot.waitUntil(lambda: app.ready, timeout=30000)
        window.sign_in_dialog.reject()
        sign_in(qtbot, app, user)
        qtbot.waitUntil(lambda: state.device_id is not None, timeout=60000)
        window.show_page(window.settings_page)
        assert "notify-send" in window.settings_page.notifications.text()    # the chosen backend, reported

        # Software D: 100 processings, running low at 50 (the vendor's threshold)
        product = next(p for p in state.products if p.name == "Software D")
        pid = str(product.id)
        offer = product.offer_of_kind("rent_processings")
        answer = state.api.place_order([{"offer_id": offer.id, "quantity": 100}], state.device_id, [product.id],
                                       "low-1-" + user.username)
        state.install_codes(answer.deliveries)

        def entry():
            return next((e for e in state.entries if str(e.product_id) == pid and e.agent_known), None)

        def polls_until(condition, n=3):
            """Wait for the condition, then for n more library refreshes (polls) after it."""
            qtbot.waitUntil(lambda: entry() is not None and condition(entry()), timeout=30000)
            seen = []
            state.libraryChanged.connect(lambda: seen.append(1))
            qtbot.waitUntil(lambda: len(seen) >= n, timeout=30000)

        def consume(n):
            assert state.agent.call(["consume", pid, str(n), "--json"], check=False).exit_code == 0

        polls_until(lambda e: e.remaining == 100)
        consume(49)                                              # 51 left: above the threshold
        polls_until(lambda e: e.remaining == 51)
        assert not entry().warning and notifier.sent == [] and calls(log) == []

        consume(1)                                               # 50 left: crossed
        qtbot.waitUntil(lambda: len(notifier.sent) == 1, timeout=30000)
        polls_until(lambda e: e.remaining == 50, n=4)                 # still low, polled again and again
        consume(10)
        polls_until(lambda e: e.remaining == 40, n=4)
        assert len(notifier.sent) == 1                           # one per crossing, not per poll
        note = notifier.sent[0]
        assert note.backend == "notify-send" and note.link == f"tokenrent://product/{pid}"
        assert "Software D" in note.text and "50 of 100 processings left" in note.text
        qtbot.waitUntil(lambda: len(calls(log)) == 1, timeout=10000)
        title, body = calls(log)[0][-2:]
        assert "running low" in title and "Software D" in body and f"tokenrent://product/{pid}" in body
        assert window.banner.isVisible() and f'href="tokenrent://product/{pid}"' in window.banner.text()

        # the way to the store: the notice's link opens the product's page
        window.banner.linkActivated.emit(note.link)
        assert window.pages.currentWidget() is window.store
        assert window.store.details.name.text() == "Software D"

        # extended (back above the threshold), then used down again: a second crossing, a second notice
        license_id = entry().license.id           # the server's id of that license
        answer = state.api.place_order([{"offer_id": offer.id, "quantity": 100, "license_id": license_id}],
                                       state.device_id, [product.id], "low-2-" + user.username)
        state.install_codes(answer.deliveries)
        polls_until(lambda e: e.remaining == 140 and not e.warning)
        assert len(notifier.sent) == 1
        consume(90)                                              # 50 of 200 left: crossed again
        qtbot.waitUntil(lambda: len(notifier.sent) == 2, timeout=30000)
        polls_until(lambda e: e.remaining == 50, n=4)
        assert len(notifier.sent) == 2 and "50 of 200 processings left" in notifier.sent[1].text
        qtbot.waitUntil(lambda: len(calls(log)) == 2, timeout=10000)
        assert len(calls(log)) == 2
    finally:
        app.agent_timer.stop()
        close_app(qtbot, app)


def test_without_tray_or_notify_send_the_banner_alone(qtbot, app_home, monkeypatch):
    """No system tray (offscreen) and no notify-send on PATH: the in-app banner only, with the
    link to the product, and the backend says so."""
    monkeypatch.setenv("PATH", str(app_home))                   # nothing named notify-send there
    assert not QSystemTrayIcon.isSystemTrayAvailable()
    assert choose_backend() == "banner"
    window = QWidget()
    qtbot.addWidget(window)
    banner = Banner(window)
    notifier = Notifier(window, banner)
    opened = []
    notifier.linkActivated.connect(opened.append)
    assert notifier.backend == "banner" and notifier.tray is None and "in the app only" in notifier.describe()
    note = notifier.notify("TokenRent: rental running low", "Software C: 3 of 10 uses left.",
                           "tokenrent://product/5")
    assert note.backend == "banner" and notifier.sent == [note]
    assert not banner.isHidden() and "Software C: 3 of 10 uses left." in banner.text()
    assert 'href="tokenrent://product/5"' in banner.text()
    banner.linkActivated.emit("tokenrent://product/5")
    assert opened == ["tokenrent://product/5"]
