"""Sessions: an expired session asks to sign in again and keeps the user's place; sign-out
revokes on the server; the token never lands in a plain file; the local demo store starts
by itself when no server is configured."""
from __future__ import annotations

from pathlib import Path

import pytest

from desktop_app.app import Options, StoreApp
from license_agent.codes import product_of_store_link as product_from_link, store_link
from desktop_app.__main__ import parse_args
from tests.desktop_app.conftest import sign_in


def test_expired_session_asks_again_and_keeps_place(qtbot, store_app, store_server):
    user = store_server.new_user(tokens=120)
    sign_in(qtbot, store_app, user)
    window, state = store_app.window, store_app.state
    window.show_page(window.wallet)
    qtbot.waitUntil(lambda: window.wallet.ledger.rowCount() == 1, timeout=20000)
    # the server ends the session (expiry, or signed out elsewhere)
    r = store_server.api("DELETE", "/v1/sessions/current", state.api.token)
    assert r.status_code == 204
    window.wallet.ledger.clear()
    window.wallet.refresh()
    qtbot.waitUntil(lambda: getattr(window, "sign_in_dialog", None) is not None
                    and window.sign_in_dialog.isVisible(), timeout=20000)
    dialog = window.sign_in_dialog
    assert "session has ended" in dialog.banner.text()
    assert window.pages.currentWidget() is window.wallet          # the user's place is kept
    dialog.password.setText(user.password)
    dialog.submit()
    # the call that failed is made again after sign-in
    qtbot.waitUntil(lambda: window.wallet.ledger.rowCount() == 1, timeout=20000)
    assert window.pages.currentWidget() is window.wallet
    assert state.api.token and state.api.token != r.request.headers["Authorization"].split()[1]


def test_sign_out_revokes_and_token_not_on_disk(qtbot, store_app, store_server, app_home):
    user = store_server.new_user(tokens=120)
    sign_in(qtbot, store_app, user)
    token = store_app.state.api.token
    for f in Path(app_home / "home").rglob("*"):
        if f.is_file():
            assert token not in f.read_text(errors="ignore"), f"session token written to {f}"
    store_app.window.sign_button.click()                      # Sign out
    assert store_app.state.me is None and store_app.window.balance_label.text() == ""
    qtbot.waitUntil(lambda: store_server.api("GET", "/v1/me", token).status_code == 401, timeout=20000)


def test_bad_password_is_a_plain_message(qtbot, store_app, store_server):
    user = store_server.new_user(tokens=0)
    dialog = store_app.window.ask_sign_in()
    dialog.username.setText(user.username)
    dialog.password.setText("wrong password")
    dialog.submit()
    qtbot.waitUntil(lambda: "password" in dialog.banner.text().lower(), timeout=20000)
    assert "Traceback" not in dialog.banner.text() and store_app.state.me is None


def test_product_links():
    assert product_from_link("tokenrent://product/42") == "42"
    assert product_from_link("tokenrent://product/42/") == "42"
    assert product_from_link("http://product/42") is None
    assert product_from_link(store_link(7)) == "7"
    assert parse_args(["tokenrent://product/9"]).product == "9"
    assert parse_args(["--product", "5", "--server", "http://x:1"]).server == "http://x:1"


def test_no_server_configured_starts_the_demo_mall_and_signs_in_at_a1(qtbot, app_home):
    """`tokenrent` with no server: the window is up at once, the demo mall (the MSP and four
    vendors, real processes) starts in the background, and the app signs in as the home demo
    user at Mall A1, whose mall it shows."""
    app = StoreApp(Options())
    app.start()
    try:
        assert app.window.isVisible() and "demo mall" in app.window.banner.text()   # before any server answers
        qtbot.waitUntil(lambda: app.ready and app.state.me is not None, timeout=240000)
        assert app.demo is not None and app.demo.process.poll() is None
        assert app.demo.root == app.paths.data_dir / "demo-mall" and (app.demo.root / "msp").is_dir()
        home = app.demo.home_member
        assert home["name"] == "Mall A1" and app.state.api.base_url == home["url"]
        assert app.state.me.username == "demo" and app.state.available_tokens == 500
        assert getattr(app.window, "sign_in_dialog", None) is None or not app.window.sign_in_dialog.isVisible()
        assert "Mall A1" in app.window.banner.text()
        import requests
        mall = requests.get(home["url"] + "/v1/mall", timeout=30).json()
        assert mall["member_id"] == home["member_id"] and len(mall["members"]) == 4
    finally:
        from desktop_app.api.worker import pending_jobs
        qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=60000)
        app.window.close()
        proc = app.demo.process if app.demo else None
        app.stop()
        assert proc is None or proc.poll() is not None       # the demo mall ends with the app


def test_the_single_vendor_demo_store_still_starts(qtbot, app_home):
    app = StoreApp(Options(demo="single"))
    app.start()
    try:
        qtbot.waitUntil(lambda: app.ready, timeout=90000)
        assert app.demo is not None and app.demo.process.poll() is None
        assert app.demo.db_path == app.paths.demo_db and app.demo.db_path.exists()
        assert "local demo store" in app.window.banner.text()
        dialog = app.window.sign_in_dialog
        assert dialog.username.text() == "demo"              # a newcomer can just press Sign in
        dialog.submit()
        qtbot.waitUntil(lambda: app.state.me is not None, timeout=20000)
        assert app.state.available_tokens == 500
        assert app.window.balance_label.text().startswith("500 tokens")
    finally:
        from desktop_app.api.worker import pending_jobs
        qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=60000)
        app.window.close()
        proc = app.demo.process if app.demo else None
        app.stop()
        assert proc is None or proc.poll() is not None       # the demo server ends with the app


def test_a_link_goes_to_the_running_storefront(qtbot, store_app, store_server):
    from desktop_app.single_instance import forward_to_running
    product_id = next(p.id for p in store_app.state.products if p.name == "Software C")
    qtbot.waitUntil(lambda: getattr(store_app, "instance_server", None) is not None, timeout=10000)
    assert store_app.instance_server.listening
    assert forward_to_running(store_app.paths, str(product_id))
    qtbot.waitUntil(lambda: store_app.window.store.details.name.text() == "Software C", timeout=10000)
    assert store_app.window.pages.currentWidget() is store_app.window.store


def _demo_server_pids(root) -> list[int]:
    """Processes whose command line names this demo mall's folder (Linux /proc): demo-mall
    (its --dir) and each of its servers (their databases)."""
    needle = str(root).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass    # the process ended meanwhile
    return pids


def _start_tokenrent(home):
    import os
    import subprocess
    import sys
    import time
    env = {**os.environ, "TOKENRENT_HOME": str(home), "LICENSE_AGENT_HOME": str(home / "agent"),
           "QT_QPA_PLATFORM": "offscreen", "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    proc = subprocess.Popen([sys.executable, "-m", "desktop_app"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = home / "data" / "demo-mall"
    deadline = time.monotonic() + 240
    logs = [root / name / "server.log" for name in ("msp", "a1", "a", "a2", "b")]
    # wait until all serve (the MSP and four vendors, besides demo-mall): the app is in its event loop
    while time.monotonic() < deadline and not (
            len(_demo_server_pids(root)) >= 6 and all("serving" in (p.read_text() if p.exists() else "") for p in logs)):
        time.sleep(0.2)
    assert len(_demo_server_pids(root)) >= 6, "the demo mall did not start"
    time.sleep(1)
    return proc, root


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc to find the processes")
def test_the_demo_server_ends_with_the_app(tmp_path):
    """`tokenrent` (the real command, a real process): the demo mall it started (demo-mall and
    its five servers) ends when the app is asked to stop (SIGTERM) and when the app is killed
    outright (SIGKILL)."""
    import signal
    import time
    for sig in (signal.SIGTERM, signal.SIGKILL):
        home = tmp_path / sig.name
        proc, db = _start_tokenrent(home)
        proc.send_signal(sig)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _demo_server_pids(db):
            time.sleep(0.2)
        assert _demo_server_pids(db) == [], f"the demo server outlived the app after {sig.name}"


def test_keyboard_navigation(qtbot, store_app):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication
    window = store_app.window
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    for n, page in ((3, "library"), (4, "wallet"), (2, "orders"), (1, "store")):
        qtbot.keyClick(window, str(n), Qt.KeyboardModifier.ControlModifier)
        assert window.pages.currentWidget() is getattr(window, page)
    # the store's search field, then the filter, then the categories, then the grid
    store = window.store
    assert store.search.nextInFocusChain() is not None
    chain, w = [], store.search
    for _ in range(6):
        chain.append(w.objectName())
        w = w.nextInFocusChain()
        while not w.focusPolicy() & Qt.FocusPolicy.TabFocus:
            w = w.nextInFocusChain()
    assert chain[:4] == ["store_search", "store_kind", "store_categories", "store_products"]
    # the sign-in dialog: username, password, then its buttons; the register tab top to bottom
    dialog = window.ask_sign_in()

    def tab_chain(start, n):
        names, w = [], start
        for _ in range(n):
            names.append(w.objectName() or (w.text().replace("&", "") if hasattr(w, "text") else ""))
            w = w.nextInFocusChain()
            while not (w.focusPolicy() & Qt.FocusPolicy.TabFocus) or not w.isVisible():
                w = w.nextInFocusChain()
        return names

    assert tab_chain(dialog.username, 4) == ["signin_username", "signin_password", "Sign in", "Cancel"]
    dialog.tabs.setCurrentIndex(1)
    assert tab_chain(dialog.r_username, 9) == ["reg_username", "reg_full_name", "reg_email", "reg_password",
                                               "reg_pin", "reg_address", "reg_phone", "Create account", "Cancel"]
    dialog.reject()


def test_declining_to_sign_in_again_then_expiring_again_asks_again(qtbot, store_app, store_server):
    user = store_server.new_user(tokens=10)
    sign_in(qtbot, store_app, user)
    window, state = store_app.window, store_app.state
    store_server.api("DELETE", "/v1/sessions/current", state.api.token)
    window.wallet.refresh()
    qtbot.waitUntil(lambda: getattr(window, "sign_in_dialog", None) is not None
                    and window.sign_in_dialog.isVisible(), timeout=20000)
    first = window.sign_in_dialog
    first.reject()
    window.wallet.refresh()
    qtbot.waitUntil(lambda: window.sign_in_dialog is not first and window.sign_in_dialog.isVisible(),
                    timeout=20000)
    window.sign_in_dialog.reject()


def test_settings_are_saved_and_bad_address_refused(qtbot, store_app):
    from desktop_app.settings.config import load_settings
    from desktop_app.api.worker import pending_jobs
    page = store_app.window.settings_page
    page.server.setText("ftp://nope")
    assert not page.save() and "http://" in page.banner.text()
    page.server.setText(store_app.state.api.base_url)
    page.install_dir.setText(str(store_app.paths.data_dir / "elsewhere"))
    assert page.save()
    qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=10000)
    saved = load_settings(store_app.paths)
    assert saved.server_url == store_app.state.api.base_url
    assert saved.install_dir.endswith("elsewhere")


def test_a_call_waiting_for_sign_in_is_not_replayed_for_another_user(qtbot, store_app, store_server):
    """Alice's transfer fails because her session ended; Bob signs in at the prompt: the
    transfer must not be sent from Bob's account, and Alice's order list is not shown to Bob."""
    alice = store_server.new_user(tokens=200)
    bob = store_server.new_user(tokens=200)
    carol = store_server.new_user(tokens=0)
    sign_in(qtbot, store_app, alice)
    window, state = store_app.window, store_app.state
    qtbot.waitUntil(lambda: state.catalog_loaded, timeout=20000)
    window.orders.add(state.products[0], state.products[0].offers[0])        # Alice's order list
    dialog = window.wallet.open_transfer()
    dialog.to_username.setText(carol.username)
    dialog.to_full_name.setText(carol.full_name)
    dialog.tokens.setValue(50)
    dialog.pin.setText(alice.pin)
    store_server.api("DELETE", "/v1/sessions/current", state.api.token)
    dialog.send_button.click()
    qtbot.waitUntil(lambda: getattr(window, "sign_in_dialog", None) is not None
                    and window.sign_in_dialog.isVisible(), timeout=20000)
    prompt = window.sign_in_dialog
    prompt.username.setText(bob.username)
    prompt.password.setText(bob.password)
    prompt.submit()
    qtbot.waitUntil(lambda: state.me is not None and state.me.username == bob.username, timeout=20000)
    from desktop_app.api.worker import pending_jobs
    qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=30000)
    assert store_server.me(bob)["available_tokens"] == 200
    assert store_server.me(carol)["available_tokens"] == 0
    assert window.orders.model.rowCount() == 0


def test_settings_show_the_agents_health(qtbot, store_app):
    page = store_app.window.settings_page
    qtbot.waitUntil(lambda: page.agent_health.text() != "…", timeout=30000)
    text = page.agent_health.text()
    assert "secrets kept in" in text
    assert "weaker protection" in text   # no keyring in these tests: the agent uses its 0600 file
