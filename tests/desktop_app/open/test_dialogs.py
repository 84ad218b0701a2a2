"""The open-token dialogs' validation and the request each builds, with the store's offers parsed
from JSON of the contract's shape (GET /v1/open-token-offers). What they send to real servers, and
the servers' answers, are in tests/desktop_app/open/test_open_network.py."""
from __future__ import annotations

from desktop_app.api.replies import OpenTokenOffers, OpenTokenPurchase
from desktop_app.open.dialogs import BuyOpenTokensDialog, GiveGiftDialog, RedeemDialog, price_cents
from desktop_app.wire import parse

OFFERS = {"unit_value_cents": 1, "gift_certificate": {"expires_in_days": 365}, "kinds": [
    {"kind": "universal", "issuer": None, "issuer_name": None, "discount_bp": 0, "price_cents_per_1000": 1000},
    {"kind": "manufacturer", "issuer": "acme", "issuer_name": "Acme", "discount_bp": 1000,
     "price_cents_per_1000": 900},
    {"kind": "group", "issuer": "north", "issuer_name": "north", "discount_bp": 500, "price_cents_per_1000": 950}]}


def _card(dialog, pin="1234"):
    dialog.payment.card_number.setText("4242 4242 4242 4242")
    dialog.payment.card_expiry.setText("12/39")
    dialog.payment.card_cvc.setText("123")
    dialog.payment.pin.setText(pin)


def test_buy_open_tokens_shows_the_price_and_builds_the_request(qtbot, state):
    dialog = BuyOpenTokensDialog(state, offers=parse(OpenTokenOffers, OFFERS), suggested_kind="manufacturer",
                                 suggested_tokens=1234)
    qtbot.addWidget(dialog)
    assert dialog.kind.count() == 3 and dialog.offer().issuer == "acme"       # the suggested kind is chosen
    assert dialog.kind.currentText() == "Manufacturer (Acme): $9.00 per 1,000 (10% off)"
    assert dialog.price.text() == "$11.11 (worth $12.34 in the mall)"          # 1,234 x 0.9 = 1,110.6 -> up
    assert dialog.request() == "Enter the card number, expiry and CVC."
    _card(dialog, pin="")
    assert dialog.request() == "Enter your PIN to confirm the purchase."
    dialog.payment.pin.setText("1234")
    key = dialog.idempotency_key
    assert dialog.request() == {"method": "card", "pin": "1234", "kind": "manufacturer", "tokens": 1234,
                                "issuer": "acme", "card": {"card_number": "4242424242424242",
                                                           "card_expiry": "12/39", "card_cvc": "123"}}
    dialog.tokens.setValue(2000)
    assert dialog.idempotency_key != key              # another amount: another purchase, another key
    dialog.kind.setCurrentIndex(0)
    assert "issuer" not in dialog.request()
    dialog.payment.offline_radios["check"].setChecked(True)
    assert dialog.request()["method"] == "check" and dialog.request()["card"] is None


def test_a_missing_field_is_said_and_nothing_is_sent(qtbot, state):
    dialog = BuyOpenTokensDialog(state, offers=parse(OpenTokenOffers, OFFERS))
    qtbot.addWidget(dialog)
    dialog.buy()
    assert dialog.banner.text() == "Enter the card number, expiry and CVC." and not dialog.busy


def test_a_gift_certificate_shows_its_expiry_before_purchase(qtbot, state):
    from datetime import datetime, timedelta
    dialog = BuyOpenTokensDialog(state, gift=True, offers=parse(OpenTokenOffers, OFFERS))
    qtbot.addWidget(dialog)
    day = (datetime.now().astimezone() + timedelta(days=365)).strftime("%Y-%m-%d")
    assert dialog.expiry.text().startswith(day) and "365 days" in dialog.expiry.text()
    dialog.value.setValue(25.0)
    assert dialog.price.text() == "$25.00 (2,500 open tokens)"
    _card(dialog)
    dialog.for_someone.setChecked(True)
    dialog.recipient_username.setText("bob")
    assert "full name" in dialog.request()
    dialog.recipient_full_name.setText("Bob Jones")
    request = dialog.request()
    assert request["kind"] == "gift_certificate" and request["value_cents"] == 2500
    assert request["recipient"] == {"username": "bob", "full_name": "Bob Jones"} and "tokens" not in request


def test_a_store_that_sells_no_open_tokens_says_so(qtbot, state):
    dialog = BuyOpenTokensDialog(state, offers=parse(OpenTokenOffers, {**OFFERS, "kinds": []}))
    qtbot.addWidget(dialog)
    assert not dialog.buy_button.isEnabled() and "sells no open tokens" in dialog.banner.text()


def test_the_price_rounds_up_to_a_cent():
    assert price_cents(1000, 1, 1000) == 900
    assert price_cents(1, 1, 1000) == 1            # 0.9 cent -> 1
    assert price_cents(3, 5, 0) == 15


PURCHASE = {"id": 1, "operation_id": "op-1", "kind": "gift_certificate", "issuer": "m-a", "tokens": 2500,
            "price_cents": 2500, "method": "card", "status": "issued", "reason": "", "refund_due": False,
            "invoice_number": None, "card_brand": "visa", "card_last4": "4242", "decline_code": None, "recipient": None,
            "lots": [{"lot_id": 7, "kind": "gift_certificate", "tokens": 2500}], "created_at": "2026-12-02T10:00:00Z",
            "issued_at": "2026-12-02T10:00:01Z", "user_id": 3,
            "gift_certificate": {"value_cents": 2500, "expires_at": "2027-12-02T00:00:00Z",
                                 "code": "ABCD-EFGH-IJKL-MNOP", "id": 4, "give_status": None, "give_reason": None}}


def _purchase(**kw):
    return parse(OpenTokenPurchase, {**PURCHASE, **kw})


def test_give_needs_a_certificate_and_both_names(qtbot, state):
    empty = GiveGiftDialog(state, [])
    qtbot.addWidget(empty)
    assert not empty.give_button.isEnabled() and "no gift certificate" in empty.banner.text()
    dialog = GiveGiftDialog(state, [_purchase()])
    qtbot.addWidget(dialog)
    day = _purchase().gift_certificate.expires_at.astimezone().strftime("%Y-%m-%d")
    assert dialog.certificate.currentText() == f"$25.00 gift certificate, expires {day}"
    dialog.username.setText("bob")
    dialog.give()
    assert "full name" in dialog.banner.text() and not dialog.busy
    dialog.full_name.setText("Bob Jones")
    assert dialog.request() == "Enter your PIN to confirm."
    dialog.pin.setText("1234")
    assert dialog.request() == ("op-1", "bob", "Bob Jones", "1234")


def test_redeem_checks_the_codes_form_only(qtbot, state):
    sent = []
    dialog = RedeemDialog(state, sent.append)
    qtbot.addWidget(dialog)
    dialog.code.setText("ABCD-EFGH")
    dialog.redeem()
    assert "16 letters" in dialog.banner.text() and not dialog.busy
    dialog.code.setText(" abcd efgh-ijkl-mnop ")
    assert dialog.request() == "abcd efgh-ijkl-mnop"        # as typed: the MSP normalizes and decides
