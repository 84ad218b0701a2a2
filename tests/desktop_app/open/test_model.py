"""The open-token models under qtmodeltester, filled with replies parsed (desktop_app.wire, as
the client does) from JSON of the contract's shapes (docs/mall.md, "The MSP's customer sessions
and the open wallet": GET /v1/open-wallet and /activity), and the reply vocabulary against the servers' own."""
from __future__ import annotations

import pytest

from desktop_app.api.replies import OpenActivityLine, OpenKind, OpenWallet, Quote, Receipt
from desktop_app.open.model import OpenActivityModel, OpenLotsModel, balance_series, kind_text, kinds_text
from desktop_app.wire import ReplyError, parse

WALLET = {
    "unit_value_cents": 1, "value_cents": 4500,
    "lots": [
        {"lot_id": 7, "kind": "gift_certificate", "issuer": "m-a", "issuer_name": "Mall A", "tokens": 2500,
         "value_cents": 2500, "expires_at": "2027-12-01T00:00:00Z", "expired": False},
        {"lot_id": 3, "kind": "universal", "issuer": None, "issuer_name": None, "tokens": 2000,
         "value_cents": 2000, "expires_at": None, "expired": False},
        {"lot_id": 2, "kind": "manufacturer", "issuer": "acme", "issuer_name": "Acme", "tokens": 300,
         "value_cents": 300, "expires_at": "2025-01-01T00:00:00Z", "expired": True},
    ],
    "gift_certificates": [{"id": 1, "code_hint": "9f86d081", "seller_member_id": "m-a", "seller_name": "Mall A",
                           "face_units": 2500, "face_cents": 2500, "tokens": 2500, "expires_at": "2027-12-01T00:00:00Z",
                           "expired": False, "held": True, "bought": False, "recipient_name": "Cap Tured",
                           "status": "held"}],
}

ACTIVITY = [   # newest first; balance_after is the lot's (gift-card style)
    {"entry_id": "t-9", "at": "2026-12-02T10:00:00Z", "lot_id": 3, "kind": "universal", "issuer": None,
     "change": -500, "balance_after": 2000, "what": "held", "member": "m-b"},
    {"entry_id": "t-5", "at": "2026-12-01T10:00:00Z", "lot_id": 7, "kind": "gift_certificate", "issuer": "m-a",
     "change": 2500, "balance_after": 2500, "what": "received", "member": None},
    {"entry_id": "t-2", "at": "2026-11-30T10:00:00Z", "lot_id": 3, "kind": "universal", "issuer": None,
     "change": 2500, "balance_after": 2500, "what": "issued", "member": "m-a"},
]


def test_lots_model(qtmodeltester):
    model = OpenLotsModel()
    qtmodeltester.check(model)
    model.set_wallet(parse(OpenWallet, WALLET))
    qtmodeltester.check(model)
    rows = [[model.data(model.index(r, c)) for c in range(model.columnCount())] for r in range(model.rowCount())]
    assert rows[0] == ["Gift certificate", "Mall A", "2027-12-01", "2,500", "$25.00"]
    assert rows[1] == ["Universal", "every store of the mall", "never", "2,000", "$20.00"]
    assert rows[2][0] == "Manufacturer" and rows[2][2].startswith("expired ")
    assert model.data(model.index(2, 0), 3)            # ToolTipRole: an expired lot says so
    assert model.data(model.index(1, 0), 3) is None
    model.set_wallet(None)
    assert model.rowCount() == 0


def test_activity_model_and_the_chart_use_the_msps_balances(qtmodeltester):
    model = OpenActivityModel()
    lines = parse(list[OpenActivityLine], ACTIVITY)
    model.set_lines(lines)
    model.set_member_names({"m-b": "Mall B"})
    qtmodeltester.check(model)
    assert [model.data(model.index(r, 4)) for r in range(3)] == ["2,000", "2,500", "2,500"]   # each lot's own
    assert model.data(model.index(0, 1)) == "Paid for an order at Mall B"
    assert model.data(model.index(1, 1)) == "Received (a gift certificate)"
    assert model.data(model.index(0, 3)) == "-500" and model.data(model.index(1, 3)) == "+2,500"
    assert model.data(model.index(1, 2)) == "Gift certificate (m-a)"          # no name known: the id
    model.set_lines(lines, parse(OpenWallet, WALLET).lots)
    assert model.data(model.index(1, 2)) == "Gift certificate (Mall A)"       # the wallet's issuer name
    wallet = parse(OpenWallet, WALLET)
    # the account after each line: that lot's balance and every other lot's latest, oldest first
    assert [y for _x, y in balance_series(lines, wallet.lots)] == [2500.0, 5000.0, 4500.0]
    # a lot with no line in the window counts with what the wallet says it holds (expired: nothing)
    quiet = wallet.lots[0].replace(lot_id=99, tokens=100)
    assert [y for _x, y in balance_series(lines, [*wallet.lots, quiet])] == [2600.0, 5100.0, 4600.0]


def test_kind_names():
    assert kind_text("manufacturer", "acme", "Acme") == "Manufacturer (Acme)"
    assert kind_text("universal", None) == "Universal"
    assert kinds_text(["group", "gift_certificate", "universal"]) == "Group, Gift certificate, Universal"
    assert kind_text("loyalty_points", None) == "Loyalty points"     # a later kind: shown, not fatal


def test_open_kinds_are_the_servers():
    from server_stub.network import open_money   # tests may read both sides; the app never does
    assert [k.value for k in OpenKind] == [k.value for k in open_money.OpenKind]


def test_a_lot_without_a_required_field_is_refused():
    bad = {**WALLET, "lots": [{k: v for k, v in WALLET["lots"][0].items() if k != "expired"}]}
    with pytest.raises(ReplyError, match="expired"):
        parse(OpenWallet, bad)


def test_a_closed_quote_and_receipt_still_parse_and_the_open_parts_read():
    quote = {"required_tokens": 100, "available_tokens": 40, "remaining_tokens": 0, "payable": True, "shortage": 0,
             "cash_cents": 1000, "token_price_cents": 10, "account_status": "active", "exact_actions": True,
             "device_id": None, "payment": "auto",
             "items": [{"offer_id": 1, "product_id": 2, "product_name": "A", "kind": "purchase", "quantity": None,
                        "tokens": 100, "cash_cents": 1000, "action": "new", "license_id": None, "on_sale": False,
                        "open_kinds": ["group", "gift_certificate", "universal"],
                        "split": {"closed_tokens": 40, "open_units": 600}}],
             "open_plan": {"portions": [{"line": 1, "lot_id": 3, "kind": "universal", "issuer": None,
                                         "tokens": 600}], "change": [], "short_units": 0, "helpful_kinds": []},
             "open_plan_error": None, "closed_tokens": 40, "open_units": 600, "unit_value_cents": 1}
    q = parse(Quote, quote)
    assert q.open_units == 600 and q.open_plan is not None and q.open_plan.by_kind() == [("universal", None, 600)]
    closed = {k: v for k, v in quote.items()
              if k not in ("payment", "open_plan", "open_plan_error", "closed_tokens", "open_units", "unit_value_cents")}
    closed["items"] = [{k: v for k, v in quote["items"][0].items() if k not in ("open_kinds", "split")}]
    assert parse(Quote, closed).open_units is None and parse(Quote, closed).payment == "closed"
    receipt = {"id": 5, "status": "pending", "created_at": "2026-12-02T10:00:00Z", "device_id": "d",
               "required_tokens": 100, "available_tokens": 40, "remaining_tokens": 0, "balance_after": 0,
               "token_price_cents": 10, "cash_cents": 1000, "items": [], "deliveries": [], "payment": "open", "paid": []}
    assert parse(Receipt, receipt).pending and parse(Receipt, receipt).paid == []
