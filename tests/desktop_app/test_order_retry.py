"""Idempotency keys on the wire, with a real server of its own and a TCP relay between it and
the storefront.

"Try again" after a lost answer keeps the key (FIG 9), so the operation runs exactly once:
1. the server stops mid-order (the Confirm click finds no server), then starts again on the
   same address: Try again places the order;
2. the server takes the order but its answer is lost on the way back (the relay closes the
   connection instead of relaying the answer): Try again gets the first answer back, and
   nothing is bought twice; the same for a card purchase.

A new try after a refusal sends a NEW key (the server's first answer is final for its key,
refusals included):
3. short of tokens (402) -> "Buy tokens now" -> confirm again: a new key, one order;
4. a declined card -> another card (or the same, again): a new key;
5. a wrong PIN on a transfer -> the right PIN: a new key.

The Idempotency-Key headers are read off the wire by the relay; the server's receipts
(GET /v1/orders, the balance, its idempotency records) say what happened."""
from __future__ import annotations

import re
import socket
import sqlite3
import threading
from pathlib import Path

import pytest

from desktop_app.app import Options, StoreApp
from tests.desktop_app.conftest import close_app, sign_in

KEY = re.compile(rb"^idempotency-key:\s*(\S+)\s*$", re.IGNORECASE | re.MULTILINE)


class Relay:
    """127.0.0.1:port -> the server. Records the Idempotency-Key of every POST it sees, per
    path (``keys_for(path)``); with ``lose_next_answer_to`` set to a path, the next answer to
    a POST there is not relayed (the client's connection is closed once the server answered)."""

    def __init__(self, upstream_port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.keys: dict[str, list[str]] = {}
        self.lose_next_answer_to: str | None = None
        self.lost_answers = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def keys_for(self, path: str) -> list[str]:
        return list(self.keys.get(path, []))

    def close(self) -> None:
        self._closed = True
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _note(self, data: bytes) -> str | None:
        """The path of a POST in this chunk (its key recorded), or None."""
        if not data.startswith(b"POST "):
            return None
        path = data.split(b" ", 2)[1].decode().split("?", 1)[0]
        m = KEY.search(data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n"))
        self.keys.setdefault(path, []).append(m.group(1).decode() if m else "")
        return path

    def _serve(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:        # the server is down: note what was asked, then the connection fails
            client.settimeout(2)
            try:
                self._note(client.recv(65536))
            except OSError:
                pass
            client.close()
            return
        doomed = threading.Event()

        def upward():
            try:
                while data := client.recv(65536):
                    path = self._note(data)
                    if path is not None and path == self.lose_next_answer_to:
                        self.lose_next_answer_to = None
                        doomed.set()
                    server.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    server.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        threading.Thread(target=upward, daemon=True).start()
        try:
            while data := server.recv(65536):
                if doomed.is_set():       # the server has answered (the operation is done): lose it
                    self.lost_answers += 1
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            client.close()
            server.close()


def idempotency_keys_on_server(srv, user_id: int) -> list[str]:
    """The server's own idempotency records for this user (its SQLite file, read-only)."""
    path = srv.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True) as db:
        return [k for (k,) in db.execute("SELECT key FROM idempotency_records WHERE user_id = ? ORDER BY id",
                                         (user_id,))]


def orders_of(srv, user):
    r = srv.api("GET", "/v1/orders", user).json()
    return r


@pytest.fixture
def relayed(qtbot, app_home, own_server):
    """The storefront talking to own_server through a Relay."""
    relay = Relay(own_server.port)
    app = StoreApp(Options(server=relay.url))
    app.start()
    yield relay, app
    close_app(qtbot, app)
    relay.close()


@pytest.fixture
def relayed_app(relayed, own_server):
    """The same, and a funded user."""
    relay, app = relayed
    return relay, own_server.new_user(tokens=500), app


def signed_in(qtbot, app, user):
    qtbot.waitUntil(lambda: app.ready, timeout=30000)
    app.window.sign_in_dialog.reject()
    sign_in(qtbot, app, user)
    qtbot.waitUntil(lambda: app.state.device_id is not None, timeout=60000)


def open_confirmation(qtbot, app, srv, user):
    from desktop_app.api.worker import pending_jobs
    window, state = app.window, app.state
    signed_in(qtbot, app, user)
    product = next(p for p in state.products if p.name == "Software A")
    window.add_to_order(product, product.offers[0])
    orders = window.orders
    window.show_page(orders)
    orders.order_button.click()
    dialog = orders.confirm_dialog
    qtbot.waitUntil(lambda: pending_jobs() == 0, timeout=30000)           # the quote is in
    return orders, dialog


def test_try_again_after_the_server_stopped_mid_order(qtbot, relayed_app, own_server):
    relay, user, app = relayed_app
    orders, dialog = open_confirmation(qtbot, app, own_server, user)
    own_server.stop()                                        # the store goes away mid-order
    dialog.confirm_button.click()
    qtbot.waitUntil(lambda: dialog.confirm_button.isEnabled(), timeout=30000)
    assert dialog.confirm_button.text() == "&Try again" and dialog.isVisible() and not dialog.placing
    assert "Trying again will not buy twice" in dialog.banner.text()
    assert len(relay.keys_for("/v1/orders")) == 1 and relay.keys_for("/v1/orders")[0] == dialog.idempotency_key

    own_server.start()                                       # back, on the same port
    dialog.confirm_button.click()                            # Try again
    qtbot.waitUntil(lambda: "ORDER CONFIRMED" in orders.banner.text(), timeout=30000)
    assert relay.keys_for("/v1/orders") == [dialog.idempotency_key] * 2  # the retry sent the same key
    assert own_server.me(user)["available_tokens"] == 400
    assert len(orders_of(own_server, user)) == 1
    assert idempotency_keys_on_server(own_server, user.id).count(dialog.idempotency_key) == 1


def test_try_again_after_the_answer_was_lost_buys_once(qtbot, relayed_app, own_server):
    relay, user, app = relayed_app
    orders, dialog = open_confirmation(qtbot, app, own_server, user)
    relay.lose_next_answer_to = "/v1/orders"
    dialog.confirm_button.click()
    qtbot.waitUntil(lambda: dialog.confirm_button.isEnabled(), timeout=30000)
    assert relay.lost_answers == 1 and dialog.confirm_button.text() == "&Try again"
    assert "ORDER CONFIRMED" not in orders.banner.text()
    # the server did take the order: the app does not know it yet
    assert own_server.me(user)["available_tokens"] == 400 and len(orders_of(own_server, user)) == 1

    dialog.confirm_button.click()                            # Try again
    qtbot.waitUntil(lambda: "ORDER CONFIRMED" in orders.banner.text(), timeout=30000)
    assert relay.keys_for("/v1/orders") == [dialog.idempotency_key] * 2
    assert own_server.me(user)["available_tokens"] == 400    # bought once
    placed = orders_of(own_server, user)
    assert len(placed) == 1
    assert idempotency_keys_on_server(own_server, user.id).count(dialog.idempotency_key) == 1
    # the license of that one order reaches the agent
    qtbot.waitUntil(lambda: any(e.name == "Software A" and e.agent_known for e in app.state.entries),
                    timeout=30000)


def _card(dialog, number="4242424242424242"):
    dialog.card_number.setText(number)
    dialog.card_expiry.setText("12/39")
    dialog.card_cvc.setText("123")


def test_try_again_after_a_lost_purchase_answer_charges_once(qtbot, relayed_app, own_server):
    relay, user, app = relayed_app
    signed_in(qtbot, app, user)
    buy = app.window.wallet.open_buy()
    buy.tokens.setValue(40)
    _card(buy)
    relay.lose_next_answer_to = "/v1/token-purchases"
    buy.buy_button.click()
    qtbot.waitUntil(lambda: relay.lost_answers == 1 and buy.buy_button.isEnabled(), timeout=30000)
    assert own_server.me(user)["available_tokens"] == 540          # charged: the app does not know yet
    buy.buy_button.click()                                         # try again, nothing changed
    qtbot.waitUntil(lambda: app.state.available_tokens == 540, timeout=30000)
    keys = relay.keys_for("/v1/token-purchases")
    assert len(keys) == 2 and keys[0] == keys[1]                   # the same key: the first answer back
    assert own_server.me(user)["available_tokens"] == 540          # charged once
    purchases = own_server.api("GET", "/v1/token-purchases", user).json()
    assert [p["tokens"] for p in purchases if p["status"] == "completed"] == [40]


def test_buy_tokens_now_then_confirm_sends_a_new_key_and_orders_once(qtbot, relayed, own_server):
    """FIG 10: short of tokens (402) -> "Buy tokens now" -> confirm again. The 402 is the final
    answer for the first key, so the second confirmation must be a new request."""
    relay, app = relayed
    user = own_server.new_user(tokens=100)
    signed_in(qtbot, app, user)
    window, state = app.window, app.state
    a = next(p for p in state.products if p.name == "Software A")
    d = next(p for p in state.products if p.name == "Software D")
    window.add_to_order(a, a.offer_of_kind("purchase"))
    window.add_to_order(d, d.offer_of_kind("rent_processings"), 1)        # 1,000 processings: 80
    orders = window.orders
    window.show_page(orders)
    orders.order_button.click()
    first = orders.confirm_dialog
    first.confirm_button.click()
    qtbot.waitUntil(lambda: getattr(orders, "shortage_dialog", None) is not None, timeout=30000)
    assert orders.shortage_dialog.shortage == 80
    next(b for b in orders.shortage_dialog.findChildren(type(window.sign_button))
         if b.objectName() == "shortage_buy").click()
    buy = window.wallet.buy_dialog
    assert buy.tokens.value() == 80
    _card(buy)
    buy.buy_button.click()
    qtbot.waitUntil(lambda: window.pages.currentWidget() is orders and state.available_tokens == 180, timeout=30000)
    orders.order_button.click()
    second = orders.confirm_dialog
    second.confirm_button.click()
    qtbot.waitUntil(lambda: "ORDER CONFIRMED" in orders.banner.text(), timeout=30000)
    keys = relay.keys_for("/v1/orders")
    assert len(keys) == 2 and keys[0] != keys[1]                           # a new key on the wire
    assert keys[1] == second.idempotency_key and first is not second
    assert len(orders_of(own_server, user)) == 1                           # exactly one order
    assert own_server.me(user)["available_tokens"] == 0
    assert idempotency_keys_on_server(own_server, user.id).count(keys[1]) == 1


def test_a_declined_card_then_another_card_sends_a_new_key(qtbot, relayed_app, own_server):
    relay, user, app = relayed_app
    signed_in(qtbot, app, user)
    buy = app.window.wallet.open_buy()
    buy.tokens.setValue(30)
    _card(buy, "4000000000000002")                                  # declined
    buy.buy_button.click()
    qtbot.waitUntil(lambda: "declined" in buy.banner.text().lower() and buy.buy_button.isEnabled(), timeout=30000)
    buy.buy_button.click()                                          # the same card again: declined again
    qtbot.waitUntil(lambda: len(relay.keys_for("/v1/token-purchases")) == 2 and buy.buy_button.isEnabled(),
                    timeout=30000)
    assert "declined" in buy.banner.text().lower()
    _card(buy)                                                      # a card that works
    buy.buy_button.click()
    qtbot.waitUntil(lambda: app.state.available_tokens == 530, timeout=30000)
    keys = relay.keys_for("/v1/token-purchases")
    assert len(keys) == 3 and len(set(keys)) == 3                   # every try after a refusal: a new key
    assert own_server.me(user)["available_tokens"] == 530           # credited once
    statuses = sorted(p["status"] for p in own_server.api("GET", "/v1/token-purchases", user).json())
    assert statuses == ["completed", "declined", "declined"]


def test_a_wrong_pin_then_the_right_one_sends_a_new_key(qtbot, relayed_app, own_server):
    relay, alice, app = relayed_app
    bob = own_server.new_user()
    signed_in(qtbot, app, alice)
    dialog = app.window.wallet.open_transfer()
    dialog.to_username.setText(bob.username)
    dialog.to_full_name.setText(bob.full_name)
    dialog.tokens.setValue(25)
    dialog.pin.setText("0000")                                      # wrong
    dialog.send_button.click()
    qtbot.waitUntil(lambda: "PIN" in dialog.banner.text() and dialog.send_button.isEnabled(), timeout=30000)
    dialog.send_button.click()                                      # the same again: refused again
    qtbot.waitUntil(lambda: len(relay.keys_for("/v1/transfers")) == 2 and dialog.send_button.isEnabled(),
                    timeout=30000)
    dialog.pin.setText(alice.pin)
    dialog.send_button.click()
    qtbot.waitUntil(lambda: own_server.me(bob)["available_tokens"] == 25, timeout=30000)
    keys = relay.keys_for("/v1/transfers")
    assert len(keys) == 3 and len(set(keys)) == 3
    assert own_server.me(alice)["available_tokens"] == 475
