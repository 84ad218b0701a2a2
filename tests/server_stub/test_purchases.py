"""Token purchases: card (simulated processor), off-line, on credit,
bundles, preferred discount, idempotency (FIG 3, 4, 13)."""
import time
import uuid

import pytest

GOOD = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0002"
NO_FUNDS = "4000 0000 0000 9995"


def card(number=GOOD, expiry="12/34", cvc="123", **kw):
    return {"method": "card", "card_number": number, "card_expiry": expiry, "card_cvc": cvc, **kw}


def test_offers_show_price_and_bundles(server):
    offers = server.api("GET", "/v1/token-offers").json()
    assert offers["token_price_cents"] > 0
    assert {"card", "check", "money_order", "purchase_order"} <= set(offers["payment_methods"])


def test_card_purchase_credits_tokens_and_activates(server):
    u = server.register()
    price = server.api("GET", "/v1/token-offers").json()["token_price_cents"]
    r = server.api("POST", "/v1/token-purchases", u, json=card(tokens=120))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "completed" and body["available_tokens"] == 120
    assert body["amount_cents"] == 120 * price
    assert body["card_brand"] == "visa" and body["card_last4"] == "4242"
    assert "4242424242424242" not in r.text and "cvc" not in r.text
    me = server.me(u)
    assert me["status"] == "active" and me["available_tokens"] == 120
    assert server.ledger_check()["ok"]


def test_purchase_below_minimum_keeps_account_inactive(server):
    u = server.register()
    assert server.api("POST", "/v1/token-purchases", u, json=card(tokens=10)).status_code == 201
    assert server.me(u)["status"] == "inactive"


@pytest.mark.parametrize("number,code", [(DECLINED, "card_declined"), (NO_FUNDS, "insufficient_funds")])
def test_declined_cards_are_402_and_move_nothing(server, number, code):
    u = server.register()
    r = server.api("POST", "/v1/token-purchases", u, json=card(number, tokens=100))
    assert r.status_code == 402, r.text
    assert r.json()["decline_code"] == code
    assert server.me(u)["available_tokens"] == 0
    assert server.api("GET", "/v1/ledger", u).json()["entries"] == []


@pytest.mark.parametrize("override", [
    {"card_number": "4242 4242 4242 4241"},   # Luhn fails
    {"card_number": "abcd"},
    {"card_expiry": "01/20"},                 # in the past
    {"card_expiry": "13/30"},
    {"card_expiry": "garbage"},
    {"card_cvc": "12"},
])
def test_bad_card_input_is_422(server, override):
    u = server.register()
    r = server.api("POST", "/v1/token-purchases", u, json={**card(tokens=100), **override})
    assert r.status_code == 422, r.text
    assert server.me(u)["available_tokens"] == 0


@pytest.mark.parametrize("body", [
    {"method": "card"}, {"tokens": 0, "method": "check"}, {"tokens": -5, "method": "check"},
    {"tokens": 10**30, "method": "check"}, {"tokens": "ten", "method": "check"},
    {"tokens": 10, "bundle_id": 1, "method": "check"}, {"tokens": 10, "method": "bitcoin"},
    {"tokens": 10, "method": "check", "card_number": GOOD}, {"tokens": 10.5, "method": "check"},
    {"bundle_id": 2**40, "method": "check"},
])
def test_bad_purchase_bodies_are_422(server, body):
    u = server.register()
    r = server.api("POST", "/v1/token-purchases", u, json=body)
    assert r.status_code == 422, r.text
    assert server.api("GET", "/v1/token-purchases", u).json() == []


def test_three_declines_lock_card_purchases(server_factory):
    srv = server_factory(env={"TOKENRENT_CARD_LOCKOUT_SECONDS": "3"})
    u = srv.register()
    codes = [srv.api("POST", "/v1/token-purchases", u, json=card(DECLINED, tokens=100)).status_code
             for _ in range(3)]
    assert codes == [402, 402, 402]
    r = srv.api("POST", "/v1/token-purchases", u, json=card(GOOD, tokens=100))
    assert r.status_code == 423, r.text
    # off-line purchases are still possible
    assert srv.api("POST", "/v1/token-purchases", u, json={"tokens": 100, "method": "check"}).status_code == 202
    time.sleep(3.2)
    assert srv.api("POST", "/v1/token-purchases", u, json=card(GOOD, tokens=100)).status_code == 201


def test_offline_purchase_pending_then_confirmed(server):
    u = server.register()
    r = server.api("POST", "/v1/token-purchases", u, json={"tokens": 150, "method": "money_order"})
    assert r.status_code == 202, r.text
    p = r.json()
    assert p["status"] == "pending" and p["invoice_number"].startswith("INV-")
    assert server.me(u)["available_tokens"] == 0
    admin = server.admin()
    pending = server.api("GET", "/v1/admin/token-purchases?status=pending", admin).json()
    assert p["id"] in [x["id"] for x in pending]
    r = server.api("POST", f"/v1/admin/token-purchases/{p['id']}/confirm", admin)
    assert r.status_code == 200 and r.json()["status"] == "completed"
    me = server.me(u)
    assert me["available_tokens"] == 150 and me["status"] == "active"
    # confirming twice credits nothing more
    assert server.api("POST", f"/v1/admin/token-purchases/{p['id']}/confirm", admin).status_code == 409
    assert server.me(u)["available_tokens"] == 150
    assert server.ledger_check()["ok"]


def test_a_retried_confirmation_with_the_same_key_replays_the_first_answer(server):
    u = server.register()
    p = server.api("POST", "/v1/token-purchases", u, json={"tokens": 120, "method": "check"}).json()
    admin, key = server.admin(), {"Idempotency-Key": f"confirm-{p['id']}"}
    first = server.api("POST", f"/v1/admin/token-purchases/{p['id']}/confirm", admin, headers=key)
    again = server.api("POST", f"/v1/admin/token-purchases/{p['id']}/confirm", admin, headers=key)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and first.json()["status"] == "completed"
    assert server.me(u)["available_tokens"] == 120
    # the same key on another purchase is another request: refused, nothing moves
    q = server.api("POST", "/v1/token-purchases", u, json={"tokens": 5, "method": "check"}).json()
    r = server.api("POST", f"/v1/admin/token-purchases/{q['id']}/confirm", admin, headers=key)
    assert r.status_code == 422
    assert server.me(u)["available_tokens"] == 120
    assert server.ledger_check()["ok"]


def test_offline_purchase_cancelled(server):
    u = server.register()
    p = server.api("POST", "/v1/token-purchases", u, json={"tokens": 100, "method": "check"}).json()
    r = server.admin_cli("cancel-purchase", str(p["id"]))
    assert '"cancelled"' in r.stdout
    assert server.api("POST", f"/v1/admin/token-purchases/{p['id']}/confirm", server.admin()).status_code == 409
    assert server.me(u)["available_tokens"] == 0


def test_on_credit_is_a_receivable_until_paid(server):
    u = server.register()
    p = server.api("POST", "/v1/token-purchases", u, json={"tokens": 200, "method": "purchase_order"}).json()
    admin = server.admin()
    r = server.api("POST", f"/v1/admin/token-purchases/{p['id']}/credit", admin)
    assert r.status_code == 200 and r.json()["status"] == "credited"
    assert server.me(u)["available_tokens"] == 200
    check = server.ledger_check()
    assert check["ok"]
    # cannot cancel once the tokens are out
    assert server.api("POST", f"/v1/admin/token-purchases/{p['id']}/cancel", admin).status_code == 409
    r = server.admin_cli("confirm-purchase", str(p["id"]))
    assert '"completed"' in r.stdout
    assert server.me(u)["available_tokens"] == 200   # paying does not credit twice


def test_bundle_and_preferred_discounts(server_factory):
    srv = server_factory()
    srv.admin_cli("set-policy", "--token-price-cents", "10", "--preferred-discount-percent", "5")
    srv.admin_cli("set-bundle", "Gold", "200", "10")
    gold = [b for b in srv.api("GET", "/v1/token-offers").json()["bundles"] if b["name"] == "Gold"][0]
    assert gold["price_cents"] == 1800 and gold["list_price_cents"] == 2000
    u = srv.register()
    r = srv.api("POST", "/v1/token-purchases", u, json=card(bundle_id=gold["id"]))
    assert r.status_code == 201 and r.json()["amount_cents"] == 1800 and r.json()["tokens"] == 200
    srv.admin_cli("set-preferred", u.username)
    r = srv.api("POST", "/v1/token-purchases", u, json=card(bundle_id=gold["id"]))
    assert r.json()["amount_cents"] == 1700          # 10% + 5%
    r = srv.api("POST", "/v1/token-purchases", u, json=card(tokens=33))
    assert r.json()["amount_cents"] == 314           # 330 * 0.95 = 313.5 -> 314 (half up)
    mine = srv.api("GET", "/v1/token-offers/mine", u).json()
    assert mine["your_discount_percent"] == 5


def test_idempotent_card_purchase(server):
    u = server.register()
    key = str(uuid.uuid4())
    first = server.api("POST", "/v1/token-purchases", u, json=card(tokens=100), headers={"Idempotency-Key": key})
    again = server.api("POST", "/v1/token-purchases", u, json=card(tokens=100), headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert server.me(u)["available_tokens"] == 100
    other = server.api("POST", "/v1/token-purchases", u, json=card(tokens=101), headers={"Idempotency-Key": key})
    assert other.status_code == 422
    assert server.me(u)["available_tokens"] == 100
    # the same key is private to each user
    v = server.register()
    assert server.api("POST", "/v1/token-purchases", v, json=card(tokens=100),
                      headers={"Idempotency-Key": key}).status_code == 201


def test_idempotent_decline_is_counted_once(server):
    u = server.register()
    key = str(uuid.uuid4())
    for _ in range(4):
        r = server.api("POST", "/v1/token-purchases", u, json=card(DECLINED, tokens=100),
                       headers={"Idempotency-Key": key})
        assert r.status_code == 402
    # one decline recorded, not four: card purchases are not locked
    assert server.api("POST", "/v1/token-purchases", u, json=card(tokens=100)).status_code == 201


def test_bad_idempotency_key_is_422(server):
    u = server.register()
    r = server.api("POST", "/v1/token-purchases", u, json=card(tokens=100),
                   headers={"Idempotency-Key": "has spaces in it"})
    assert r.status_code == 422
    assert server.me(u)["available_tokens"] == 0
