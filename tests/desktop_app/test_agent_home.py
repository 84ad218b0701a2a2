"""The storefront and `license-agent` share one agent home: the agent's own default (here
under a temp XDG_DATA_HOME, LICENSE_AGENT_HOME unset), so codes the storefront installs are
seen by `license-agent` run outside the app. Codes the server holds for this computer
(bought earlier through the API, never installed) are installed at sign-in into that fresh
home, and the library shows the agent's own counts."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from desktop_app.api.worker import pending_jobs
from desktop_app.app import Options, StoreApp
from tests.desktop_app.conftest import sign_in

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def default_agent_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENRENT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LICENSE_AGENT_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    from license_agent.paths import agent_home
    home = agent_home()
    assert str(home).startswith(str((tmp_path / "xdg").resolve()))
    return home


def outside_agent(*args: str) -> subprocess.CompletedProcess:
    """`license-agent ARGS` as a user (or a rented program) runs it: no LICENSE_AGENT_HOME."""
    env = {k: v for k, v in os.environ.items() if k != "LICENSE_AGENT_HOME"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "license_agent", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_agent_home_is_the_agents_own_default_except_in_the_demo(qtbot, default_agent_home):
    store = StoreApp(Options(server="http://127.0.0.1:9"))
    try:
        assert store.state.agent.home == default_agent_home
    finally:
        store.window.close()
    demo = StoreApp(Options())                      # the local demo store (not started here)
    try:
        assert demo.state.agent.home == demo.paths.data_dir / "agent"
    finally:
        demo.window.close()


def test_codes_held_on_the_server_are_installed_at_sign_in(qtbot, default_agent_home, store_server):
    user = store_server.new_user(tokens=500)
    device = json.loads(outside_agent("device", "--json").stdout)     # a fresh home: new device keys
    r = store_server.api("POST", "/v1/devices", user, json={"public_key": device["public_key"], "name": "pc"})
    assert r.status_code in (200, 201), r.text
    products = store_server.api("GET", "/v1/products").json()
    d = next(p for p in products if p["name"] == "Software D")
    offer = next(o for o in d["offers"] if o["kind"] == "rent_processings")
    r = store_server.api("POST", "/v1/orders", user, headers={"Idempotency-Key": "home-" + user.username},
                         json={"items": [{"offer_id": offer["id"], "quantity": 1000}],
                               "device_id": device["device_id"], "installed_product_ids": [d["id"]]})
    assert r.status_code == 201, r.text
    assert json.loads(outside_agent("status", "--json").stdout)["licenses"] == []   # not installed yet

    app = StoreApp(Options(server=store_server.base_url))
    app.start()
    try:
        qtbot.waitUntil(lambda: app.ready, timeout=30000)
        app.window.sign_in_dialog.reject()
        sign_in(qtbot, app, user)
        state = app.state
        qtbot.waitUntil(lambda: any(e.name == "Software D" and e.agent_known for e in state.entries),
                        timeout=60000)
        assert state.device_id == device["device_id"]
        # the code is in the agent's own default home: `license-agent` outside the app uses it
        p = outside_agent("consume", str(d["id"]), "5", "--json")
        assert p.returncode == 0, p.stdout + p.stderr
        state.refresh_library()
        qtbot.waitUntil(lambda: next(e for e in state.entries if e.name == "Software D").remaining == 995,
                        timeout=30000)
        entry = next(e for e in state.entries if e.name == "Software D")
        assert (entry.kind, entry.total) == ("processings", 1000)   # the agent's count, not the server's
        window = app.window
        window.show_page(window.library)
        library = window.library
        qtbot.waitUntil(lambda: library.select_product(d["id"]), timeout=20000)
        assert "995" in library.left.text()
    finally:
        qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=60000)
        app.window.close()
        app.stop()
