"""Desktop tests: the real app under pytest-qt, against a real server (temp
SQLite, demo data) and the real license agent with a temp LICENSE_AGENT_HOME."""
from __future__ import annotations


import pytest

from tests.support.server import start_server


@pytest.fixture(scope="session")
def store_server(tmp_path_factory):
    """One demo-data server (SQLite) for the desktop tests; tests create their own users."""
    srv, cleanup = start_server("sqlite", tmp_path_factory.mktemp("desktop-server"), demo=True)
    yield srv
    cleanup()


@pytest.fixture
def own_server(tmp_path):
    """A demo-data server of the test's own, for tests that stop and start it."""
    srv, cleanup = start_server("sqlite", tmp_path / "own-server", demo=True)
    yield srv
    cleanup()


@pytest.fixture
def app_home(tmp_path, monkeypatch):
    """Every file of the app and of the agent under tmp_path; no keyring."""
    monkeypatch.setenv("TOKENRENT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LICENSE_AGENT_HOME", str(tmp_path / "agent"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    return tmp_path


@pytest.fixture
def store_app(qtbot, app_home, store_server):
    """The real StoreApp pointed at the test server, started and shown."""
    from desktop_app.app import Options, StoreApp

    app = StoreApp(Options(server=store_server.base_url))
    app.start()
    qtbot.waitUntil(lambda: app.ready, timeout=20000)
    dialog = getattr(app.window, "sign_in_dialog", None)
    if dialog is not None:
        dialog.reject()
    yield app
    from desktop_app.api.worker import pending_jobs
    qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=60000)   # no answer lands on a closed window
    app.window.close()
    app.window.deleteLater()
    app.stop()


def close_app(qtbot, app) -> None:
    """Quit the storefront the way a user does, once its background work is done
    (the library cache written, so the next start finds it)."""
    from desktop_app.api.worker import pending_jobs

    qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=60000)
    app.state.cache.save_now()
    app.window.close()
    app.window.deleteLater()
    app.stop()


def sign_in(qtbot, app, user):
    """Sign in through the dialog, the way a user does."""
    window = app.window
    dialog = window.ask_sign_in()
    dialog.username.setText(user.username)
    dialog.password.setText(user.password)
    dialog.submit()
    qtbot.waitUntil(lambda: app.state.me is not None, timeout=20000)
    return app.state.me


# ------------------------------------------------------------------ captured replies

class Captured(dict):
    """Replies captured from the live server and agent: name -> (reply shape, decoded JSON).
    ``data(name)`` is the JSON, ``parsed(name)`` the typed reply the storefront makes of it."""

    def data(self, name: str):
        return self[name][1]

    def parsed(self, name: str):
        from desktop_app.wire import parse
        shape, data = self[name]
        return parse(shape, data, name)


def _ok(r, status: int = 200):
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r.json()


@pytest.fixture(scope="session")
def captured(store_server, tmp_path_factory):
    """Every reply the storefront reads, taken from the real server (demo data) and the real
    agent (a temp LICENSE_AGENT_HOME), never written by hand. The user buys Software A, rents
    Software B by time and 1,000 processings of Software D; the agent installs the codes and
    spends 960 processings of D, so D runs low (its threshold is 50)."""
    import uuid

    from desktop_app.agent import replies as agent_replies
    from desktop_app.agent.bridge import AgentBridge
    from desktop_app.api import replies as r

    srv = store_server
    got = Captured()
    agent = AgentBridge(tmp_path_factory.mktemp("captured-agent"))
    raw = lambda *args, **kw: agent.call([*args, "--json"], **kw).answer   # noqa: E731

    body = {"username": f"cap_{uuid.uuid4().hex[:8]}", "password": "correct horse 1", "pin": "4321",
            "full_name": "Cap Tured", "email": "cap@example.com"}
    got["POST /v1/accounts"] = r.Account, _ok(srv.api("POST", "/v1/accounts", json=body), 201)
    session = _ok(srv.api("POST", "/v1/sessions", json={"username": body["username"], "password": body["password"]}))
    got["POST /v1/sessions"] = r.Session, session
    token = session["token"]
    srv.grant(body["username"], 500)

    got["agent device"] = agent_replies.AgentDevice, raw("device")
    device = got.data("agent device")
    got["POST /v1/devices"] = r.Device, _ok(srv.api("POST", "/v1/devices", token, json={
        "public_key": device["public_key"], "name": "capture box"}), 201)
    got["GET /v1/vendor-key"] = r.VendorKey, _ok(srv.api("GET", "/v1/vendor-key"))
    got["agent trust"] = agent_replies.Trusted, raw("trust", got.data("GET /v1/vendor-key")["public_key"])
    got["GET /v1/me"] = r.Me, _ok(srv.api("GET", "/v1/me", token))
    got["GET /v1/token-offers"] = r.TokenOffers, _ok(srv.api("GET", "/v1/token-offers"))
    got["GET /v1/categories"] = list[r.Category], _ok(srv.api("GET", "/v1/categories"))
    got["GET /v1/products"] = list[r.Product], _ok(srv.api("GET", "/v1/products"))

    products = {p["name"]: p for p in got.data("GET /v1/products")}
    offer = lambda name, kind: next(o for o in products[name]["offers"] if o["kind"] == kind)  # noqa: E731
    items = [{"offer_id": offer("Software A", "purchase")["id"]},
             {"offer_id": offer("Software B", "rent_time")["id"], "quantity": 7},
             {"offer_id": offer("Software D", "rent_processings")["id"], "quantity": 1000}]
    got["PUT /v1/order-list"] = r.OrderList, _ok(srv.api("PUT", "/v1/order-list", token, json={"items": items}))
    got["GET /v1/order-list"] = r.OrderList, _ok(srv.api("GET", "/v1/order-list", token))
    got["POST /v1/quotes"] = r.Quote, _ok(srv.api("POST", "/v1/quotes", token, json={"items": items}))
    got["POST /v1/orders"] = r.Receipt, _ok(srv.api(
        "POST", "/v1/orders", token, json={"items": items, "device_id": device["device_id"],
                                            "installed_product_ids": [products["Software D"]["id"]]},
        headers={"Idempotency-Key": uuid.uuid4().hex}), 201)
    # 195 of 500 spent: 305 left, so Software B's 250 purchase plus A again does not fit
    short = [{"offer_id": offer("Software B", "purchase")["id"]}, {"offer_id": offer("Software C", "purchase")["id"]}]
    r402 = srv.api("POST", "/v1/orders", token, json={"items": short, "device_id": device["device_id"]},
                   headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r402.status_code == 402, r402.text
    got["402 POST /v1/orders"] = r.Shortage, r402.json()
    got["POST /v1/quotes (short)"] = r.Quote, _ok(srv.api("POST", "/v1/quotes", token, json={"items": short}))
    got["GET /v1/orders"] = list[r.Receipt], _ok(srv.api("GET", "/v1/orders", token))
    got["GET /v1/licenses"] = list[r.License], _ok(srv.api("GET", "/v1/licenses", token))
    first = got.data("GET /v1/licenses")[0]
    got["GET /v1/licenses/{id}/code"] = r.LicenseCode, _ok(srv.api(
        "GET", f"/v1/licenses/{first['id']}/code", token, params={"device_id": device["device_id"]}))

    card = {"card_number": "4242424242424242", "card_expiry": "12/39", "card_cvc": "123"}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    got["POST /v1/token-purchases (card)"] = r.TokenPurchase, _ok(srv.api(
        "POST", "/v1/token-purchases", token, json={"method": "card", "tokens": 20, **card}, headers=key), 201)
    got["POST /v1/token-purchases (check)"] = r.TokenPurchase, _ok(srv.api(
        "POST", "/v1/token-purchases", token, json={"method": "check", "tokens": 50},
        headers={"Idempotency-Key": uuid.uuid4().hex}), 202)
    declined = srv.api("POST", "/v1/token-purchases", token,
                       json={"method": "card", "tokens": 20, **card, "card_number": "4000000000000002"},
                       headers={"Idempotency-Key": uuid.uuid4().hex})
    assert declined.status_code == 402, declined.text
    got["402 POST /v1/token-purchases"] = r.Declined, declined.json()
    got["GET /v1/token-purchases"] = list[r.TokenPurchase], _ok(srv.api("GET", "/v1/token-purchases", token))
    friend = srv.new_user()
    got["POST /v1/transfers"] = r.Transfer, _ok(srv.api(
        "POST", "/v1/transfers", token, json={"to_username": friend.username, "to_full_name": friend.full_name,
                                              "tokens": 5, "pin": "4321"},
        headers={"Idempotency-Key": uuid.uuid4().hex}), 201)
    got["GET /v1/ledger"] = r.Ledger, _ok(srv.api("GET", "/v1/ledger", token))

    # the agent: the order's codes, then D spent down to its warning
    receipt = got.data("POST /v1/orders")
    for n, delivery in enumerate(receipt["deliveries"]):
        got[f"agent install #{n}"] = agent_replies.Installed, raw("install", "-", stdin=delivery["authorization_code"])
    d_id = str(products["Software D"]["id"])
    b_id = str(products["Software B"]["id"])
    got["agent consume"] = agent_replies.GateAnswer, raw("consume", d_id, "960")
    got["agent check (processings)"] = agent_replies.GateAnswer, raw("check", d_id)
    got["agent check (time)"] = agent_replies.GateAnswer, raw("check", b_id)
    got["agent check (no license)"] = agent_replies.GateAnswer, agent.call(
        ["check", "999999", "--json"], check=False).answer
    got["agent failure"] = agent_replies.AgentFailure, agent.call(
        ["install", "-", "--json"], stdin="TRC1.not-a-code", check=False).answer
    got["agent status"] = agent_replies.AgentStatus, raw("status")
    got["agent doctor"] = agent_replies.Doctor, agent.call(["doctor", "--json"], check=False).answer
    got.user_token, got.device_id, got.agent = token, device["device_id"], agent
    return got
