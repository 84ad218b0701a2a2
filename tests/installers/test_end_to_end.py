"""The whole path, end to end, with every part real: the server (demo catalog, SQLite, its
own signing key, the example programs' packages built and published at start), a real agent
home, the storefront under pytest-qt, and the raster tool it downloads and installs.

One user: registers in the storefront, buys tokens with a card, orders 1,000 processings of
Software D, gets the raster tool downloaded, verified and installed, processes 3 images with
it (997 left), extends by 1,000 (1,997 left), uses up the rest, and then the agent refuses the
next image and points to the store, whose link opens Software D's page."""
from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest
from PySide6.QtWidgets import QComboBox

from license_agent import install_store
from tests.support.installers_agent import AgentHome
from tests.support.server import TestUser, pg_unavailable_reason, start_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def homes(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENRENT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LICENSE_AGENT_HOME", str(tmp_path / "agent"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    return tmp_path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request, tmp_path):
    if request.param == "postgres" and (reason := pg_unavailable_reason()):
        pytest.skip(reason)
    srv, cleanup = start_server(request.param, tmp_path / "server", demo=True)
    yield srv
    cleanup()


def add_offer(window, product, tier_text: str) -> None:
    """Select the product in the store and press "Add to order" on its rental offer."""
    assert window.open_product(product.id)
    details = window.store.details
    offer = product.offer_of_kind("rent_processings")
    combo = details.findChild(QComboBox, f"tiers_{offer.id}")
    combo.setCurrentIndex(next(i for i in range(combo.count()) if combo.itemText(i).startswith(tier_text)))
    button = next(b for b in details.findChildren(type(window.sign_button))
                  if b.objectName() == f"add_{offer.id}")
    button.click()


def place_order(qtbot, window) -> None:
    orders = window.orders
    window.show_page(orders)
    orders.order_button.click()
    dialog = orders.confirm_dialog
    qtbot.waitUntil(lambda: dialog.confirm_button.isEnabled(), timeout=20000)
    with qtbot.waitSignal(dialog.confirmed, timeout=60000):
        dialog.confirm_button.click()
    assert orders.model.rowCount() == 0


def make_scan(path: Path) -> None:
    from PySide6.QtGui import QColor, QImage
    img = QImage(40, 30, QImage.Format.Format_RGB32)
    img.fill(QColor(230, 230, 230))
    for x in range(10, 30):
        img.setPixelColor(x, 15, QColor(0, 0, 0))
    img.setPixelColor(3, 3, QColor(0, 0, 0))   # a speck the cleanup removes
    assert img.save(str(path), "PNG")


def test_register_buy_order_install_process_extend_run_out(qtbot, homes, server, tmp_path):
    from desktop_app.app import Options, StoreApp
    from license_agent.codes import product_of_store_link as product_from_link
    from desktop_app.library import install as installer

    store = StoreApp(Options(server=server.base_url))
    qtbot.addWidget(store.window)
    store.start()
    window, state = store.window, store.state
    try:
        qtbot.waitUntil(lambda: store.ready, timeout=30000)
        software_d = next(p for p in state.products if p.name == "Software D")
        pid = str(software_d.id)

        # 1. Register in the storefront (FIG 3); a new account is inactive until it buys tokens.
        dialog = window.ask_sign_in()
        dialog.tabs.setCurrentIndex(1)
        username = "e2e_" + secrets.token_hex(3)
        for field, value in (("r_username", username), ("r_full_name", "Erin End-to-End"),
                             ("r_email", f"{username}@example.com"), ("r_password", "a long passphrase 1"),
                             ("r_pin", "2468")):
            getattr(dialog, field).setText(value)
        dialog.submit()
        qtbot.waitUntil(lambda: state.me is not None, timeout=30000)
        assert state.me.username == username and state.me.status == "inactive"

        # 2. Buy 200 tokens with a card.
        window.show_page(window.wallet)
        buy = window.wallet.open_buy(200)
        buy.tokens.setValue(200)
        buy.card_number.setText("4242424242424242")
        buy.card_expiry.setText("12/39")
        buy.card_cvc.setText("123")
        buy.buy()
        qtbot.waitUntil(lambda: state.me is not None and state.me.active
                        and state.available_tokens == 200, timeout=30000)

        # 3. Order 1,000 processings of Software D (not installed yet: it is downloaded).
        qtbot.waitUntil(lambda: state.device_id is not None, timeout=60000)
        add_offer(window, software_d, "1,000 processings")
        place_order(qtbot, window)
        qtbot.waitUntil(lambda: state.available_tokens == 120, timeout=30000)

        # 4. The storefront downloads the raster tool, verifies its signature and every file,
        #    and installs it per user; the agent has the code.
        window.show_page(window.library)
        qtbot.waitUntil(lambda: any(e.name == "Software D" and e.installed for e in state.entries),
                        timeout=120000)
        qtbot.waitUntil(lambda: next(e for e in state.entries if e.name == "Software D").remaining == 1000,
                        timeout=30000)   # the agent's own count, once the code is installed
        entry = next(e for e in state.entries if e.name == "Software D")
        assert (entry.kind, entry.remaining, entry.total) == ("processings", 1000, 1000)
        program = installer.installed(state.install_dir, pid)
        assert program is not None and program.version == "1.0.0"
        assert Path(state.install_dir) in program.directory.parents
        assert (program.directory / "rastertool.py").is_file()

        # 5. Process 3 images with the installed program: 997 left.
        agent = AgentHome(Path(os.environ["LICENSE_AGENT_HOME"]))
        scans = []
        for i in range(3):
            scans.append(tmp_path / f"scan{i}.png")
            make_scan(scans[-1])
        out_dir = tmp_path / "out"
        env = dict(agent.env, QT_QPA_PLATFORM="offscreen")
        run = subprocess.run([*install_store.entry_command(program), "-o", str(out_dir), *map(str, scans)],
                             capture_output=True, text=True, env=env, timeout=120)
        assert run.returncode == 0, run.stderr
        assert sorted(p.name for p in out_dir.iterdir()) == [f"scan{i}.cleanup.png" for i in range(3)]
        assert "997 processings left" in run.stdout
        assert agent.remaining(pid) == 997
        state.refresh_library()
        qtbot.waitUntil(lambda: next(e for e in state.entries if e.name == "Software D").remaining == 997,
                        timeout=30000)

        # 6. Extend by 1,000 from the library: 1,997 left, 80 more tokens spent.
        library = window.library
        assert library.select_product(pid)
        library.buttons["extend"].click()
        orders = window.orders
        assert orders.model.rowCount() == 1 and orders.model.line(0).license_id == entry.license.id
        orders.model.set_tier(0, next(i for i, t in enumerate(orders.model.line(0).offer.tiers)
                                      if t.quantity == 1000))
        place_order(qtbot, window)
        qtbot.waitUntil(lambda: state.available_tokens == 40, timeout=30000)
        qtbot.waitUntil(lambda: agent.remaining(pid) == 1997, timeout=30000)
        state.refresh_library()
        qtbot.waitUntil(lambda: next(e for e in state.entries if e.name == "Software D").remaining == 1997,
                        timeout=30000)

        # 7. Use the rest (another program, through the CLI), then the agent refuses the run
        #    and points to the store.
        used = agent.cli_json("consume", pid, "1997")
        assert used["remaining"] == 0
        refused = subprocess.run([*install_store.entry_command(program), "-o", str(out_dir), str(scans[0])],
                                 capture_output=True, text=True, env=env, timeout=120)
        assert refused.returncode == 3, (refused.stdout, refused.stderr)
        assert f"tokenrent://product/{pid}" in refused.stderr
        assert len(list(out_dir.iterdir())) == 3          # nothing was processed
        gate = agent.cli_json("check", pid, expect=3)
        assert gate["allowed"] is False and gate["used_up"] is True

        # Launch from the library: the agent refuses before the program starts.
        window.show_page(library)
        state.refresh_library()
        qtbot.waitUntil(lambda: next(e for e in state.entries if e.name == "Software D").remaining == 0,
                        timeout=30000)
        assert library.select_product(pid)
        library.buttons["launch"].click()
        qtbot.waitUntil(lambda: "may not run" in library.banner.text(), timeout=30000)

        # The store link opens Software D's page in the storefront.
        assert product_from_link(gate["store_url"]) == pid
        assert window.open_product(product_from_link(gate["store_url"]))
        assert window.pages.currentWidget() is window.store

        # The server agrees: 200 - 80 - 80 tokens, and its ledger balances.
        user = server.sign_in(TestUser(username, "a long passphrase 1", "2468", "Erin End-to-End"))
        assert server.me(user)["available_tokens"] == 40
        assert server.ledger_check().get("ok") is True
    finally:
        from desktop_app.api.worker import pending_jobs
        qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=60000)
        window.close()
        store.stop()
