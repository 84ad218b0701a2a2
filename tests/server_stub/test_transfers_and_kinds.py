"""Transfers (FIG 11), token kinds, expiry, statement."""
import time
import uuid
from datetime import datetime, timedelta, timezone, UTC

from tests.support.server import TestUser


def send(server, sender, recipient, tokens, pin=None, full_name=None, key=None):
    headers = {"Idempotency-Key": key} if key else {}
    return server.api("POST", "/v1/transfers", sender, headers=headers, json={
        "to_username": recipient.username, "to_full_name": full_name or recipient.full_name,
        "tokens": tokens, "pin": pin or sender.pin})


def test_transfer_moves_tokens_and_shows_on_both_statements(server):
    a, b = server.new_user(tokens=300), server.register()
    r = send(server, a, b, 120)
    assert r.status_code == 201, r.text
    assert r.json()["available_tokens"] == 180
    assert server.me(a)["available_tokens"] == 180
    mb = server.me(b)
    assert mb["available_tokens"] == 120 and mb["status"] == "active"  # reached MT=100
    la = server.api("GET", "/v1/ledger", a).json()["entries"]
    lb = server.api("GET", "/v1/ledger", b).json()["entries"]
    assert la[0]["kind"] == "transfer" and la[0]["tokens"] == -120 and la[0]["balance_after"] == 180
    assert lb[0]["kind"] == "transfer" and lb[0]["tokens"] == 120 and lb[0]["balance_after"] == 120
    assert server.ledger_check()["ok"]


def test_transfer_refusals(server):
    a, b = server.new_user(tokens=200), server.register()
    assert send(server, a, b, 10, pin="0000").status_code == 403
    assert send(server, a, b, 10, full_name="Someone Else").status_code == 404
    ghost = type(b)("no_such_user_x", "", "", "Nobody")
    assert send(server, a, ghost, 10).status_code == 404
    assert send(server, a, a, 10).status_code == 422
    r = send(server, a, b, 201)
    assert r.status_code == 402 and r.json()["shortage"] == 1
    for bad in (0, -1, 10**20, "5", 1.5):
        r = server.api("POST", "/v1/transfers", a, json={"to_username": b.username, "to_full_name": b.full_name,
                                                         "tokens": bad, "pin": a.pin})
        assert r.status_code == 422, (bad, r.text)
    assert server.me(a)["available_tokens"] == 200 and server.me(b)["available_tokens"] == 0


def test_inactive_sender_may_not_transfer(server):
    a, b = server.register(), server.register()
    server.grant(a, 50)                     # below MT=100: still inactive
    assert server.me(a)["status"] == "inactive"
    r = send(server, a, b, 10)
    assert r.status_code == 403 and r.json()["account_status"] == "inactive"
    assert r.json()["type"] == "https://tokenrent.example/problems/account-inactive"


def test_five_wrong_pins_lock_transfers(server_factory):
    srv = server_factory(env={"TOKENRENT_LOCKOUT_SECONDS": "3"})
    a, b = srv.new_user(tokens=200), srv.register()
    codes = [send(srv, a, b, 10, pin="9999").status_code for _ in range(5)]
    assert codes == [403, 403, 403, 403, 423]
    assert send(srv, a, b, 10).status_code == 423        # right PIN, still locked
    time.sleep(3.2)
    assert send(srv, a, b, 10).status_code == 201


def test_parallel_wrong_pins_count_one_by_one(server):
    from concurrent.futures import ThreadPoolExecutor

    a, b = server.new_user(tokens=200), server.register()
    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda _: send(server, a, b, 10, pin="9999").status_code, range(12)))
    assert sorted(codes) == [403] * 4 + [423] * 8, codes
    assert server.me(a)["available_tokens"] == 200


def test_only_standard_tokens_are_transferable(server):
    a, b = server.new_user(tokens=100), server.register()
    server.grant(a, 50, kind="incentive")
    server.grant(a, 30, kind="restricted")
    me = server.me(a)
    assert me["available_tokens"] == 180
    assert me["tokens"] | {} and me["tokens"]["transferable"] == 100
    assert me["tokens"]["incentive"] == 50 and me["tokens"]["restricted"] == 30
    r = send(server, a, b, 101)
    assert r.status_code == 402
    assert send(server, a, b, 100).status_code == 201
    me = server.me(a)
    assert me["available_tokens"] == 80 and me["tokens"]["transferable"] == 0


def test_idempotent_transfer_applied_once(server):
    a, b = server.new_user(tokens=300), server.register()
    key = str(uuid.uuid4())
    r1 = send(server, a, b, 100, key=key)
    r2 = send(server, a, b, 100, key=key)
    assert r1.status_code == r2.status_code == 201 and r1.json() == r2.json()
    assert server.me(b)["available_tokens"] == 100
    assert send(server, a, b, 99, key=key).status_code == 422


def test_expired_tokens_leave_by_a_ledger_transfer(server):
    u = server.new_user(tokens=100)
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    server.grant(u, 40, kind="incentive", expires_at=soon)
    me = server.me(u)
    assert me["available_tokens"] == 140
    assert me["tokens"]["expiring"][0]["tokens"] == 40
    time.sleep(2.5)
    assert server.me(u)["available_tokens"] == 100
    entries = server.api("GET", "/v1/ledger", u).json()["entries"]
    assert entries[0]["kind"] == "expiry" and entries[0]["tokens"] == -40
    assert entries[0]["balance_after"] == 100
    assert server.ledger_check()["ok"]


def test_expiry_in_the_past_is_refused(server):
    u = server.register()
    r = server.api("POST", "/v1/admin/grants", server.admin(), json={
        "username": u.username, "tokens": 5, "expires_at": "2001-01-01T00:00:00Z"})
    assert r.status_code == 422


def test_grant_expiry_far_away_or_without_an_offset_is_refused(server):
    u = server.register()
    for expires in ("9999-12-31T23:00:00-05:00", "2200-01-01T00:00:00Z", "2030-01-01T00:00:00"):
        r = server.api("POST", "/v1/admin/grants", server.admin(), json={
            "username": u.username, "tokens": 5, "expires_at": expires})
        assert r.status_code == 422, (expires, r.status_code, r.text)
    assert server.me(u)["available_tokens"] == 0
    assert server.ledger_check()["ok"]


def test_a_grant_expires_at_the_instant_given_whatever_its_offset(server):
    u = server.register()
    when = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    server.grant(u, 7, kind="incentive", expires_at=when.astimezone(timezone(timedelta(hours=5))).isoformat())
    server.grant(u, 3, kind="incentive", expires_at=when.isoformat())
    expiring = server.me(u)["tokens"]["expiring"]
    assert len(expiring) == 1, expiring   # the same instant is one lot
    assert expiring[0]["tokens"] == 10
    assert datetime.fromisoformat(expiring[0]["expires_at"].replace("Z", "+00:00")) == when


def test_a_retried_grant_with_the_same_key_grants_once(server):
    u = server.register()
    body = {"username": u.username, "tokens": 40}
    first = server.api("POST", "/v1/admin/grants", server.admin(), json=body,
                       headers={"Idempotency-Key": "grant-once-" + u.username})
    again = server.api("POST", "/v1/admin/grants", server.admin(), json=body,
                       headers={"Idempotency-Key": "grant-once-" + u.username})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert server.me(u)["available_tokens"] == 40
    other = server.api("POST", "/v1/admin/grants", server.admin(), json={**body, "tokens": 41},
                       headers={"Idempotency-Key": "grant-once-" + u.username})
    assert other.status_code == 422
    assert server.me(u)["available_tokens"] == 40


def test_large_amounts_do_not_overflow(server_factory):
    """1,000,000 tokens at 1,000,000 cents each is 10^12 cents: past 32 bits."""
    srv = server_factory()
    srv.admin_cli("set-policy", "--token-price-cents", "1000000")
    u = srv.register()
    r = srv.api("POST", "/v1/token-purchases", u, json={"tokens": 1_000_000, "method": "check"})
    assert r.status_code == 202, r.text
    assert r.json()["amount_cents"] == 10**12
    srv.admin_cli("confirm-purchase", str(r.json()["id"]))
    for _ in range(3):   # the balance passes 2^31 after 2,148 of these; grants are quicker
        srv.grant(u, 1_000_000)
    assert srv.me(u)["available_tokens"] == 4_000_000
    assert srv.ledger_check()["ok"]


def test_statement_lists_every_movement_with_balance_after(server):
    u = server.register()
    server.api("POST", "/v1/token-purchases", u, json={"tokens": 100, "method": "card",
               "card_number": "4242424242424242", "card_expiry": "12/40", "card_cvc": "123"})
    server.grant(u, 25, kind="incentive")
    v = server.register()
    send(server, u, v, 30)
    led = server.api("GET", "/v1/ledger", u).json()
    kinds = [e["kind"] for e in led["entries"]]
    assert kinds == ["transfer", "grant", "purchase"]
    assert [e["balance_after"] for e in led["entries"]] == [95, 125, 100]
    assert [e["tokens"] for e in led["entries"]] == [-30, 25, 100]
    assert led["available_tokens"] == 95


def test_negative_draw_limit_via_cli(server):
    u = server.new_user(tokens=100)
    res = server.admin_cli("set-negative-limit", u.username, "50")
    assert '"negative_limit": 50' in res.stdout
    assert server.me(u)["tokens"]["negative_draw_limit"] == 50


def test_vendor_settings_over_http(server_factory):
    """The admin's wallet routes end to end: negative draw, token policy, bundles, admins."""
    from tests.support.store import make_catalog, order, register_device

    srv = server_factory()
    admin = srv.admin()
    cat = make_catalog(srv)
    u = srv.new_user(tokens=100)
    keys = register_device(srv, u)
    items = [{"offer_id": cat.offers[("perm", "purchase")]},                      # 100 tokens
             {"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 10}]      # + 5
    assert order(srv, u, keys, items).status_code == 402
    r = srv.api("PATCH", f"/v1/admin/users/{u.id}", admin, json={"negative_limit": 50})
    assert r.status_code == 200 and r.json()["negative_limit"] == 50, r.text
    assert order(srv, u, keys, items).status_code == 201                 # 5 drawn on credit
    me = srv.me(u)
    assert me["available_tokens"] == -5 and me["tokens"]["negative_draw_limit"] == 50
    assert srv.api("PATCH", f"/v1/admin/users/{u.id}", admin, json={"negative_limit": 4}).status_code == 409
    assert srv.me(u)["tokens"]["negative_draw_limit"] == 50               # refused: nothing changed
    v = srv.register()
    assert send(srv, u, v, 1).status_code == 402                          # credit is not transferable
    # the token price and the minimum
    r = srv.api("PUT", "/v1/admin/token-policy", admin, json={"token_price_cents": 12, "min_tokens": 30})
    assert r.status_code == 200 and (r.json()["token_price_cents"], r.json()["min_tokens"]) == (12, 30)
    assert srv.api("GET", "/v1/token-offers").json()["token_price_cents"] == 12
    product = srv.api("GET", f"/v1/products/{cat.products['perm']}").json()
    assert product["offers"][0]["cash_cents"] == 1200                    # 100 tokens at 12 cents
    # a bundle, then changed and withdrawn
    r = srv.api("PUT", "/v1/admin/bundles", admin, json={"name": "Platinum", "tokens": 500,
                                                         "discount_percent": 15, "active": True})
    assert r.status_code == 200, r.text
    bundle = next(b for b in srv.api("GET", "/v1/token-offers").json()["bundles"] if b["name"] == "Platinum")
    assert (bundle["tokens"], bundle["list_price_cents"], bundle["price_cents"]) == (500, 6000, 5100)
    srv.api("PUT", "/v1/admin/bundles", admin, json={"name": "Platinum", "tokens": 500,
                                                     "discount_percent": 15, "active": False})
    assert "Platinum" not in [b["name"] for b in srv.api("GET", "/v1/token-offers").json()["bundles"]]
    # another admin, who can use admin routes; a user still cannot
    r = srv.api("POST", "/v1/admin/admins", admin, json={
        "username": "second_admin", "password": "another long pass", "pin": "4321",
        "full_name": "Second Admin", "email": "second@tokenrent.example"})
    assert r.status_code == 201, r.text
    second = srv.sign_in(TestUser("second_admin", "another long pass", "4321", "Second Admin"))
    assert srv.api("GET", "/v1/admin/users", second).status_code == 200
    assert srv.api("GET", "/v1/admin/users", u).status_code == 403
    assert srv.ledger_check()["ok"]
