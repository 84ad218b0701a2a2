"""The confirmation dialog's "Try again" after a network error (FIG 9): the retry sends the
same Idempotency-Key and the order is placed exactly once, with a real server of its own.

1. the server stops mid-order (the Confirm click finds no server), then starts again on the
   same address: Try again places the order;
2. the server takes the order but its answer is lost on the way back (a TCP relay between
   the app and the server closes the connection instead of relaying the answer): Try again
   gets the first answer back, and nothing is bought twice.

The Idempotency-Key headers are read off the wire by the relay; the server's receipts
(GET /v1/orders, the balance, its idempotency records) say how many orders there are."""
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
    """127.0.0.1:port -> the server. Records the Idempotency-Key of every POST /v1/orders it
    sees; with ``lose_next_order_answer`` set, the next order's answer is not relayed (the
    client's connection is closed once the server has answered)."""

    def __init__(self, upstream_port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.order_keys: list[str] = []
        self.lose_next_order_answer = False
        self.lost_answers = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

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

    def _note(self, data: bytes) -> bool:
        """Is this chunk an order request? Records its key."""
        if not data.startswith(b"POST /v1/orders "):
            return False
        m = KEY.search(data.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n"))
        self.order_keys.append(m.group(1).decode() if m else "")
        return True

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
                    if self._note(data) and self.lose_next_order_answer:
                        self.lose_next_order_answer = False
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
                if doomed.is_set():       # the server has answered (the order is in): lose it
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
def relayed_app(qtbot, app_home, own_server):
    """The storefront talking to own_server through a Relay, and a funded user."""
    relay = Relay(own_server.port)
    user = own_server.new_user(tokens=500)
    app = StoreApp(Options(server=relay.url))
    app.start()
    yield relay, user, app
    close_app(qtbot, app)
    relay.close()


def open_confirmation(qtbot, app, srv, user):
    from desktop_app.api.worker import pending_jobs
    window, state = app.window, app.state
    qtbot.waitUntil(lambda: app.ready, timeout=30000)
    window.sign_in_dialog.reject()
    sign_in(qtbot, app, user)
    qtbot.waitUntil(lambda: state.device_id is not None, timeout=60000)
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
    assert len(relay.order_keys) == 1 and relay.order_keys[0] == dialog.idempotency_key

    own_server.start()                                       # back, on the same port
    dialog.confirm_button.click()                            # Try again
    qtbot.waitUntil(lambda: "ORDER CONFIRMED" in orders.banner.text(), timeout=30000)
    assert relay.order_keys == [dialog.idempotency_key] * 2  # the retry sent the same key
    assert own_server.me(user)["available_tokens"] == 400
    assert len(orders_of(own_server, user)) == 1
    assert idempotency_keys_on_server(own_server, user.id).count(dialog.idempotency_key) == 1


def test_try_again_after_the_answer_was_lost_buys_once(qtbot, relayed_app, own_server):
    relay, user, app = relayed_app
    orders, dialog = open_confirmation(qtbot, app, own_server, user)
    relay.lose_next_order_answer = True
    dialog.confirm_button.click()
    qtbot.waitUntil(lambda: dialog.confirm_button.isEnabled(), timeout=30000)
    assert relay.lost_answers == 1 and dialog.confirm_button.text() == "&Try again"
    assert "ORDER CONFIRMED" not in orders.banner.text()
    # the server did take the order: the app does not know it yet
    assert own_server.me(user)["available_tokens"] == 400 and len(orders_of(own_server, user)) == 1

    dialog.confirm_button.click()                            # Try again
    qtbot.waitUntil(lambda: "ORDER CONFIRMED" in orders.banner.text(), timeout=30000)
    assert relay.order_keys == [dialog.idempotency_key] * 2
    assert own_server.me(user)["available_tokens"] == 400    # bought once
    placed = orders_of(own_server, user)
    assert len(placed) == 1
    assert idempotency_keys_on_server(own_server, user.id).count(dialog.idempotency_key) == 1
    # the license of that one order reaches the agent
    qtbot.waitUntil(lambda: any(e.name == "Software A" and e.agent_known for e in app.state.entries),
                    timeout=30000)
