"""Register, activate by buying tokens, off-line purchase, declined card, transfer, statement:
the real app driven like a user, against the real server."""
from __future__ import annotations

import secrets

from tests.desktop_app.conftest import sign_in


def _card(dialog, number="4242424242424242"):
    dialog.card_number.setText(number)
    dialog.card_expiry.setText("12/39")
    dialog.card_cvc.setText("123")


def test_register_inactive_then_activate_by_card(qtbot, store_app, store_server):
    window, state = store_app.window, store_app.state
    dialog = window.ask_sign_in()
    dialog.tabs.setCurrentIndex(1)
    username = "newbie_" + secrets.token_hex(3)
    dialog.r_username.setText(username)
    dialog.r_full_name.setText("New Bie")
    dialog.r_email.setText(f"{username}@example.com")
    dialog.r_password.setText("a long password 1")
    dialog.r_pin.setText("2468")
    dialog.submit()
    qtbot.waitUntil(lambda: state.me is not None, timeout=20000)
    assert state.me.username == username and state.me.status == "inactive"
    # told plainly how to activate, may browse but not order
    assert window.status_banner.isVisible()
    assert "not active" in window.status_banner.text() and "100 tokens ($10.00)" in window.status_banner.text()
    window.orders.add(*_any_offer(state))
    window.orders.start_order()
    assert "not active" in window.orders.banner.text()
    assert getattr(window.orders, "confirm_dialog", None) is None

    window.show_page(window.wallet)
    buy = window.wallet.open_buy()
    assert buy.tokens.value() == 100                  # the minimum purchase is suggested
    assert "$10.00" in buy.cash.text()                # cash equivalent (FIG 17)
    _card(buy)
    buy.buy_button.click()
    qtbot.waitUntil(lambda: state.available_tokens == 100 and state.active, timeout=20000)
    assert store_server.me(_user(store_server, username))["available_tokens"] == 100
    assert window.balance_label.text() == "100 tokens ($10.00)"
    assert not window.status_banner.isVisible()


def _user(server, username, password="a long password 1"):
    from tests.support.server import TestUser
    return server.sign_in(TestUser(username, password, "2468", ""))


def _any_offer(state):
    p = state.products[0]
    return p, p.offers[0]


def test_declined_card_changes_nothing(qtbot, store_app, store_server):
    user = store_server.new_user(tokens=150)
    sign_in(qtbot, store_app, user)
    buy = store_app.window.wallet.open_buy()
    buy.tokens.setValue(20)
    _card(buy, "4000000000000002")
    buy.buy_button.click()
    qtbot.waitUntil(lambda: "declined" in buy.banner.text().lower(), timeout=20000)
    assert buy.buy_button.isEnabled()
    assert store_server.me(user)["available_tokens"] == 150


def test_offline_purchase_shows_invoice_and_pending(qtbot, store_app, store_server):
    user = store_server.new_user(tokens=150)
    sign_in(qtbot, store_app, user)
    buy = store_app.window.wallet.open_buy()
    buy.tokens.setValue(300)
    buy.offline_radios["money_order"].setChecked(True)
    buy.buy_button.click()
    qtbot.waitUntil(lambda: "Invoice number" in buy.banner.text(), timeout=20000)
    assert "pending" in buy.banner.text()
    invoice = buy.last_answer.invoice_number
    assert invoice and invoice in buy.banner.text()
    assert store_server.me(user)["available_tokens"] == 150   # nothing credited until paid
    wallet = store_app.window.wallet
    wallet.refresh()
    qtbot.waitUntil(lambda: not wallet.pending.isHidden(), timeout=20000)
    assert invoice in wallet.pending.text() and "300 tokens by money order" in wallet.pending.text()
    # the vendor receives the payment: the tokens arrive, nothing is pending any more
    r = store_server.api("POST", f"/v1/admin/token-purchases/{buy.last_answer.id}/confirm", store_server.admin())
    assert r.status_code == 200, r.text
    wallet.refresh()
    qtbot.waitUntil(lambda: store_app.state.available_tokens == 450 and wallet.pending.isHidden(),
                    timeout=20000)


def test_bundle_purchase(qtbot, store_app, store_server):
    user = store_server.new_user(tokens=150)
    sign_in(qtbot, store_app, user)
    buy = store_app.window.wallet.open_buy()
    gold = next(i for i in range(buy.amount.count()) if "200 tokens" in buy.amount.itemText(i))
    buy.amount.setCurrentIndex(gold)
    assert "10% off" in buy.amount.currentText() and "$18.00" in buy.amount.currentText()
    assert buy.tokens.value() == 200 and not buy.tokens.isEnabled()     # what the bundle gives
    assert buy.cash.text() == "$18.00 (10% off $20.00)"                 # its price, not the Amount again
    buy.amount.setCurrentIndex(0)                                       # back to a number of tokens
    assert buy.tokens.isEnabled() and buy.tokens.value() == 1 and buy.cash.text() == "1 token ($0.10)"
    buy.amount.setCurrentIndex(gold)
    _card(buy)
    buy.buy_button.click()
    qtbot.waitUntil(lambda: store_app.state.available_tokens == 350, timeout=20000)


def test_transfer_fig11(qtbot, store_app, store_server):
    alice = store_server.new_user(tokens=300)
    bob = store_server.new_user(tokens=0)
    sign_in(qtbot, store_app, alice)
    wallet = store_app.window.wallet
    dialog = wallet.open_transfer()
    dialog.to_username.setText(bob.username)
    dialog.to_full_name.setText(bob.full_name)
    dialog.tokens.setValue(50)
    assert dialog.cash.text() == "50 tokens ($5.00)"          # FIG 17
    assert dialog.balance.text() == "300 tokens ($30.00)"
    dialog.pin.setText("0000")                       # wrong PIN
    dialog.send_button.click()
    qtbot.waitUntil(lambda: "PIN" in dialog.banner.text(), timeout=20000)
    assert store_server.me(alice)["available_tokens"] == 300
    dialog.to_full_name.setText("Someone Else")       # name does not match the username
    dialog.pin.setText(alice.pin)
    dialog.send_button.click()
    qtbot.waitUntil(lambda: "No user has that username and full name" in dialog.banner.text(), timeout=20000)
    dialog.to_full_name.setText(bob.full_name)
    dialog.send_button.click()
    qtbot.waitUntil(lambda: store_server.me(bob)["available_tokens"] == 50, timeout=20000)
    assert store_server.me(alice)["available_tokens"] == 250
    qtbot.waitUntil(lambda: store_app.state.available_tokens == 250, timeout=20000)
    # the statement and its chart show the movement
    qtbot.waitUntil(lambda: wallet.ledger.rowCount() >= 2, timeout=20000)
    assert wallet.ledger.index(0, 2).data() == "-50 tokens (-$5.00)"
    assert wallet.ledger.index(0, 3).data() == "250 tokens ($25.00)"
    assert len(wallet.chart.points()) >= 2 and wallet.chart.points()[-1][1] == 250
