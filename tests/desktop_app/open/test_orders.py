"""The order's open part in the storefront, from replies of the contract's shapes: the split
before confirming (the quote's split and the MSP's plan), the confirmation's kinds and balances
(the receipt's paid and open_balance_after), the shortage dialog's helpful kinds."""
from __future__ import annotations

import copy

from PySide6.QtWidgets import QLabel

from desktop_app.api.client import ShortOfOpenTokens
from desktop_app.api.replies import OpenShort, Quote, Receipt
from desktop_app.open.model import plan_lines, receipt_lines
from desktop_app.orders.page import OpenShortageDialog, payment_combo
from desktop_app.wire import parse

ITEM = {"offer_id": 1, "product_id": 2, "product_name": "Software A", "kind": "purchase", "quantity": None,
        "tokens": 100, "cash_cents": 1000, "action": "new", "license_id": None, "on_sale": False,
        "open_kinds": ["manufacturer", "manufacturer_free", "gift_certificate", "universal"],
        "split": {"closed_tokens": 40, "open_units": 600}}
QUOTE = {"required_tokens": 100, "available_tokens": 40, "remaining_tokens": 0, "payable": True, "shortage": 0,
         "cash_cents": 1000, "token_price_cents": 10, "account_status": "active", "exact_actions": True,
         "device_id": None, "payment": "auto", "items": [ITEM], "open_plan_error": None, "closed_tokens": 40,
         "open_units": 600, "unit_value_cents": 1,
         "open_plan": {"portions": [
             {"line": 1, "lot_id": 9, "kind": "manufacturer", "issuer": "acme", "tokens": 100},
             {"line": 1, "lot_id": 7, "kind": "gift_certificate", "issuer": "m-a", "tokens": 300},
             {"line": 1, "lot_id": 8, "kind": "gift_certificate", "issuer": "m-a", "tokens": 200}],
             "change": [{"line": 0, "lot_id": 8, "kind": "universal", "issuer": None, "tokens": 2300}],
             "short_units": 0, "helpful_kinds": []}}


def test_the_split_before_confirming_is_the_quotes():
    assert plan_lines(parse(Quote, QUOTE)) == [
        "This store's tokens: 40",
        "Manufacturer (acme): 100 open tokens",
        "Gift certificate (m-a): 500 open tokens",          # one line per kind and issuer
        "Change from a gift certificate, back as universal tokens: 2,300 open tokens"]
    no_plan = copy.deepcopy(QUOTE)
    no_plan.update(open_plan=None, open_plan_error="the mall did not answer in 3 s")
    assert plan_lines(parse(Quote, no_plan))[1] == ("Open tokens: 600 open tokens, but the mall did not say which "
                                                    "kinds (the mall did not answer in 3 s)")
    short = copy.deepcopy(QUOTE)
    short["open_plan"].update(portions=[], change=[], short_units=250, helpful_kinds=["manufacturer", "universal"])
    assert plan_lines(parse(Quote, short))[1] == ("Open tokens: 600 open tokens needed, you are short of 250 open "
                                                  "tokens; these kinds would help: Manufacturer, Universal")


def test_the_confirmation_names_the_kinds_used_and_the_balance_left():
    receipt = parse(Receipt, {
        "id": 5, "status": "completed", "created_at": "2026-12-02T10:00:00Z", "device_id": "d",
        "required_tokens": 100, "available_tokens": 40, "remaining_tokens": 0, "balance_after": 0,
        "token_price_cents": 10, "cash_cents": 1000, "items": [], "deliveries": [], "payment": "auto",
        "paid": [{"asset": "token:m-a", "kind": "closed", "issuer": None, "tokens": 40},
                 {"asset": "open:universal", "kind": "universal", "issuer": None, "tokens": 600}],
        "open_balance_after": {"universal": 1400}})
    assert receipt_lines(receipt) == ["Paid with 40 of this store's tokens, 600 open tokens (Universal).",
                                      "Left: Universal 1,400."]


def test_the_shortage_dialog_offers_the_kinds_that_would_help(qtbot):
    body = {"detail": "short of open tokens", "reason": "short", "short_units": 250,
            "helpful_kinds": ["group", "gift_certificate", "universal"]}
    error = ShortOfOpenTokens(body["detail"], 402, body, parse(OpenShort, body))
    dialog = OpenShortageDialog(error)
    qtbot.addWidget(dialog)
    text = dialog.findChild(QLabel, "open_shortage_text")
    assert text.text() == ("You are short of 250 open tokens for this order. These kinds would pay for it: "
                           "Group, Gift certificate, Universal.")
    assert [b.text() for b in dialog.buy_buttons.values()] == [
        "Buy group open tokens", "Buy a gift certificate", "Buy universal open tokens"]
    with qtbot.waitSignal(dialog.buyOpenTokens) as got:
        dialog.buy_buttons["universal"].click()
    assert got.args == ["universal", 250]


def test_the_payment_choice(qtbot):
    combo = payment_combo("x", "auto")
    qtbot.addWidget(combo)
    assert [combo.itemData(i) for i in range(combo.count())] == ["closed", "auto", "open"]
    assert combo.currentData() == "auto"
