"""Nobody sees or touches another user's data: for every user route in
/openapi.json, user B probing with user A's ids gets nothing of A's.
New routes (the store's) are covered automatically as they appear."""
import re

import pytest

PUBLIC = {"/v1/health", "/v1/accounts", "/v1/sessions", "/v1/token-offers", "/openapi.json",
          "/v1/vendor-key", "/v1/categories", "/v1/products",
          "/v1/products/{product_id}"}  # the public catalog page (store ids: test_store_isolation.py)


@pytest.fixture(scope="module")
def victim(server):
    """User A with a recognisable footprint: purchases, a transfer, a ledger."""
    a = server.new_user(tokens=200, full_name="Victim Quetzalcoatl")
    card = {"tokens": 111, "method": "card", "card_number": "4242424242424242",
            "card_expiry": "12/40", "card_cvc": "123"}
    p1 = server.api("POST", "/v1/token-purchases", a, json=card).json()
    p2 = server.api("POST", "/v1/token-purchases", a, json={"tokens": 77, "method": "check"}).json()
    friend = server.register(full_name="Friend Of Victim")
    r = server.api("POST", "/v1/transfers", a, json={"to_username": friend.username,
                   "to_full_name": friend.full_name, "tokens": 13, "pin": a.pin})
    assert r.status_code == 201
    markers = [a.username, "Victim Quetzalcoatl", p2["invoice_number"]]
    return a, [p1["id"], p2["id"]], markers


def user_operations(server):
    spec = server.api("GET", "/openapi.json").json()
    for path, ops in spec["paths"].items():
        if path.startswith("/v1/admin") or path in PUBLIC:
            continue
        for method in ops:
            if (method.upper(), path) == ("DELETE", "/v1/sessions/current"):
                continue  # signs the prober out; acts only on its own session
            yield method.upper(), path


def test_the_victims_own_view_shows_the_markers(server, victim):
    a, ids, markers = victim
    assert markers[1] in server.api("GET", "/v1/me", a).text
    assert markers[2] in server.api("GET", "/v1/token-purchases", a).text
    assert server.api("GET", f"/v1/token-purchases/{ids[1]}", a).status_code == 200


def test_no_user_route_leaks_another_users_data(server, victim):
    a, ids, markers = victim
    b = server.new_user(tokens=150)
    before = server.me(a)
    probed = 0
    for method, path in user_operations(server):
        params = re.findall(r"\{([a-z_]+)\}", path)
        for victim_id in (ids if params else [None]):
            url = path
            for p in params:
                url = url.replace("{" + p + "}", str(victim_id))
            body = {} if method in ("POST", "PUT", "PATCH") else None
            r = server.api(method, url, b, json=body)
            probed += 1
            assert r.status_code < 500, (method, url, r.text)
            for m in markers:
                assert m not in r.text, (method, url, r.text)
            if params:
                assert r.status_code in (403, 404, 405, 422), (method, url, r.status_code, r.text)
    assert probed >= 6
    after = server.me(a)
    assert after["available_tokens"] == before["available_tokens"]


def test_ledger_and_purchase_lists_are_per_user(server, victim):
    a, ids, _ = victim
    b = server.new_user(tokens=100)
    b_ids = [p["id"] for p in server.api("GET", "/v1/token-purchases", b).json()]
    assert not set(b_ids) & set(ids)
    b_ledger = server.api("GET", "/v1/ledger", b).json()["entries"]
    a_ledger_ids = {e["id"] for e in server.api("GET", "/v1/ledger", a).json()["entries"]}
    assert not {e["id"] for e in b_ledger} & a_ledger_ids
    assert len(b_ledger) == 1 and b_ledger[0]["tokens"] == 100
