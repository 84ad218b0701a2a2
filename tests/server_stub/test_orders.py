"""Quotes, orders, receipts, the saved order list (FIG 8, 9, 10), against
the real server on SQLite and PostgreSQL, with the real license agent."""
from __future__ import annotations

import concurrent.futures
import uuid

import pytest

from tests.support.server import TestUser
from tests.support.store import (
    Agent, available, licenses_of, make_catalog, open_code, order, register_device,
)
from datetime import UTC


@pytest.fixture(scope="module")
def cat(server):
    return make_catalog(server)


def _demo_ids(srv):
    products = {p["name"]: p for p in srv.api("GET", "/v1/products").json()}
    offer = lambda name, kind: next(o for o in products[name]["offers"] if o["kind"] == kind)  # noqa: E731
    return products, offer


# ---------------------------------------------------------------- FIG 8 / 9, end to end

def test_fig8_fig9_example_through_the_api_and_into_the_real_agent(server_factory, tmp_path):
    srv = server_factory(demo=True)
    demo = srv.sign_in(TestUser("demo", "demo-pass-1", "1234", "Demo User"))
    assert available(srv, demo) == 500                                 # FIG 8: AT 500
    products, offer = _demo_ids(srv)
    a, d = products["Software A"], products["Software D"]
    items = [{"offer_id": offer("Software A", "purchase")["id"]},
             {"offer_id": offer("Software D", "rent_processings")["id"], "quantity": 1000}]

    agent = Agent(tmp_path / "agent")
    dev = agent.device()
    r = srv.api("POST", "/v1/devices", demo, json={"public_key": dev["public_key"], "name": "demo pc"})
    assert r.status_code == 201 and r.json()["device_id"] == dev["device_id"]
    agent.trust(srv.api("GET", "/v1/vendor-key").json()["public_key"])

    q = srv.api("POST", "/v1/quotes", demo, json={"items": items})
    assert q.status_code == 200, q.text
    q = q.json()
    assert (q["required_tokens"], q["available_tokens"], q["remaining_tokens"]) == (180, 500, 320)
    assert [i["tokens"] for i in q["items"]] == [100, 80]
    assert q["cash_cents"] == 180 * 10 and q["payable"] is True

    # FIG 9: Software D is already installed here, Software A is not
    r = srv.api("POST", "/v1/orders", demo, headers={"Idempotency-Key": "fig9"},
                json={"items": items, "device_id": dev["device_id"], "installed_product_ids": [d["id"]]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["required_tokens"], body["available_tokens"], body["balance_after"]) == (180, 500, 320)
    assert available(srv, demo) == 320
    # the statement says what the tokens bought
    spent = [e for e in srv.api("GET", "/v1/ledger", demo).json()["entries"] if e["tokens"] == -180]
    assert [e["memo"] for e in spent] == [f"order {body['id']}: Software A, Software D"]
    deliveries = {x["product_id"]: x for x in body["deliveries"]}
    assert set(deliveries) == {a["id"], d["id"]}
    assert "download_url" in deliveries[a["id"]]                      # not installed: download + code
    assert "download_url" not in deliveries[d["id"]]                   # installed: only a new code
    assert deliveries[a["id"]]["sha256"] == a["latest_version"]["sha256"]

    for x in body["deliveries"]:
        res = agent.json("install", x["authorization_code"])
        assert res["status"] == "installed"
    status = agent.json("status")
    by_product = {str(row["product_id"]): row for row in status["licenses"]}
    assert by_product[str(a["id"])]["kind"] == "permanent"
    assert by_product[str(d["id"])]["kind"] == "processings"
    assert agent.json("check", str(a["id"]))["allowed"] is True
    assert agent.json("consume", str(d["id"]), "3")["allowed"] is True

    # the download link works for the holder, and is the published package
    dl = srv.api("GET", deliveries[a["id"]]["download_url"].replace(srv.base_url, ""), demo)
    assert dl.status_code == 200 and len(dl.content) == deliveries[a["id"]]["size"]
    assert srv.ledger_check()["ok"]


# ---------------------------------------------------------------- quotes

def test_quote_moves_nothing_and_shows_the_shortage(server, cat):
    user = server.new_user(tokens=150)
    items = [{"offer_id": cat.offers[("perm", "purchase")]},
             {"offer_id": cat.offers[("proc", "rent_processings")], "quantity": 1000}]
    q = server.api("POST", "/v1/quotes", user, json={"items": items}).json()
    assert (q["required_tokens"], q["available_tokens"], q["remaining_tokens"]) == (180, 150, -30)
    assert q["payable"] is False and q["shortage"] == 30
    assert [i["action"] for i in q["items"]] == ["new", "new"]
    assert available(server, user) == 150
    assert licenses_of(server, user) == []


# ---------------------------------------------------------------- orders

def test_short_of_tokens_is_402_with_rt_at_shortage_and_changes_nothing(server, cat):
    user = server.new_user(tokens=100)
    keys = register_device(server, user)
    items = [{"offer_id": cat.offers[("perm", "purchase")]},
             {"offer_id": cat.offers[("proc", "rent_processings")], "quantity": 100}]
    r = order(server, user, keys, items)
    assert r.status_code == 402, r.text
    assert r.json()["required_tokens"] == 110 and r.json()["available_tokens"] == 100
    assert r.json()["shortage"] == 10
    assert available(server, user) == 100
    assert licenses_of(server, user) == []
    assert server.api("GET", "/v1/orders", user).json() == []
    assert server.ledger_check()["ok"]


def test_inactive_account_may_not_order(server, cat):
    user = server.new_user()          # no tokens: inactive
    keys = register_device(server, user)
    r = order(server, user, keys, [{"offer_id": cat.offers[("perm", "purchase")]}])
    assert r.status_code == 403 and "inactive" in r.json()["detail"]
    assert licenses_of(server, user) == []


def test_order_is_applied_exactly_once_per_idempotency_key(server, cat):
    user = server.new_user(tokens=500)
    keys = register_device(server, user)
    items = [{"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 10}]
    key = str(uuid.uuid4())
    first = order(server, user, keys, items, key=key)
    again = order(server, user, keys, items, key=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert available(server, user) == 495
    assert len(server.api("GET", "/v1/orders", user).json()) == 1
    other = order(server, user, keys, [{"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 50}], key=key)
    assert other.status_code == 422
    assert available(server, user) == 495


def test_parallel_orders_with_one_key_apply_once(server, cat):
    user = server.new_user(tokens=500)
    keys = register_device(server, user)
    items = [{"offer_id": cat.offers[("perm", "purchase")]}]
    key = str(uuid.uuid4())
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: order(server, user, keys, items, key=key), range(8)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert available(server, user) == 400
    assert len(licenses_of(server, user)) == 1


def test_concurrent_orders_never_overspend(server, cat):
    user = server.new_user(tokens=100)
    devices = [register_device(server, user) for _ in range(6)]
    item = [{"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 50}]   # 20 tokens each
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda k: order(server, user, k, item), devices * 2))
    codes = sorted(a.status_code for a in answers)
    assert codes.count(201) == 5 and codes.count(402) == 7, codes
    assert available(server, user) == 0
    assert sum(row["uses"] for row in licenses_of(server, user)) == 5 * 50
    assert server.ledger_check()["ok"]


def test_receipts_list_and_foreign_receipts(server, cat):
    user, other = server.new_user(tokens=300), server.new_user(tokens=10)
    keys = register_device(server, user)
    r = order(server, user, keys, [{"offer_id": cat.offers[("perm", "purchase")]}])
    assert r.status_code == 201
    oid = r.json()["id"]
    rec = server.api("GET", f"/v1/orders/{oid}", user).json()
    assert rec["required_tokens"] == 100 and rec["cash_cents"] == 1000 and rec["balance_after"] == 200
    assert rec["items"][0]["tokens"] == 100 and rec["items"][0]["action"] == "new"
    assert [o["id"] for o in server.api("GET", "/v1/orders", user).json()] == [oid]
    assert server.api("GET", f"/v1/orders/{oid}", other).status_code == 404
    assert server.api("GET", "/v1/orders", other).json() == []


def test_delivery_follows_installed_product_ids(server, cat):
    user = server.new_user(tokens=300)
    keys = register_device(server, user)
    admin = server.admin()
    pid = cat.products["perm"]
    server.api("POST", f"/v1/admin/products/{pid}/versions?version=1.0", admin, data=b"program bytes",
               headers={"Content-Type": "application/octet-stream"})
    r = order(server, user, keys, [{"offer_id": cat.offers[("perm", "purchase")]}], installed=[])
    d = r.json()["deliveries"][0]
    assert d["download_url"].endswith(f"/v1/products/{pid}/download") and d["size"] == len(b"program bytes")
    grant = open_code(server, keys, d["authorization_code"])
    assert grant.kind == "permanent" and grant.product_id == str(pid)
    assert grant.store_url == f"tokenrent://product/{pid}"


# ---------------------------------------------------------------- bad input changes nothing

def test_bad_items_get_a_clear_4xx_and_change_nothing(server, cat):
    user, other = server.new_user(tokens=500), server.new_user(tokens=500)
    keys, other_keys = register_device(server, user), register_device(server, other)
    # the other user's rental, and one of our own permanent licenses
    r = order(server, other, other_keys, [{"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 10}])
    foreign_license = r.json()["deliveries"][0]["license_id"]
    r = order(server, user, keys, [{"offer_id": cat.offers[("perm", "purchase")]}])
    own_permanent = r.json()["deliveries"][0]["license_id"]
    before_tokens, before_licenses = available(server, user), licenses_of(server, user)
    before_other = licenses_of(server, other)
    before_orders = [o["id"] for o in server.api("GET", "/v1/orders", user).json()]
    before_other_orders = [o["id"] for o in server.api("GET", "/v1/orders", other).json()]

    def unchanged(what):
        assert available(server, user) == before_tokens, what
        assert licenses_of(server, user) == before_licenses, what        # same licenses, serials, totals
        assert [o["id"] for o in server.api("GET", "/v1/orders", user).json()] == before_orders, what
        assert licenses_of(server, other) == before_other, what
        assert [o["id"] for o in server.api("GET", "/v1/orders", other).json()] == before_other_orders, what

    cases = [
        ([{"offer_id": 999999}], 404, "no such offer"),
        ([{"offer_id": cat.offers[("proc", "rent_processings")], "quantity": 500}], 422, "not a tier"),
        ([{"offer_id": cat.offers[("proc", "rent_processings")]}], 422, "quantity"),
        ([{"offer_id": cat.offers[("perm", "purchase")], "quantity": 3}], 422, "no quantity"),
        ([{"offer_id": cat.offers[("time", "convert")]}], 422, "license_id"),
        ([{"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 10, "license_id": foreign_license}], 404,
         "no such license"),
        ([{"offer_id": cat.offers[("uses", "convert")], "license_id": foreign_license}], 404, "no such license"),
        ([{"offer_id": cat.offers[("perm", "purchase")]}], 409, "already permanent"),
        ([{"offer_id": cat.offers[("time", "convert")], "license_id": own_permanent}], 422, "another product"),
        ([{"offer_id": cat.offers[("perm", "purchase")]}, {"offer_id": 0}], 422, "offer_id"),
    ]
    for items, status, words in cases:
        r = order(server, user, keys, items)
        assert r.status_code == status, (items, r.text)
        assert words in r.json()["detail"], (items, r.json())
        unchanged(items)
    # a device of another user
    r = server.api("POST", "/v1/orders", user, json={"items": [{"offer_id": cat.offers[("perm", "purchase")]}],
                                                     "device_id": other_keys.device_id})
    assert r.status_code == 404 and "device" in r.json()["detail"]
    unchanged("another user's device")
    # a convert on a permanent license (the same product)
    perm_time = order(server, user, keys, [{"offer_id": cat.offers[("time", "purchase")]}])
    assert perm_time.status_code == 201, perm_time.text
    lic = perm_time.json()["deliveries"][0]["license_id"]
    assert available(server, user) == before_tokens - 250
    before_licenses, before_tokens = licenses_of(server, user), available(server, user)
    before_orders = [o["id"] for o in server.api("GET", "/v1/orders", user).json()]
    r = order(server, user, keys, [{"offer_id": cat.offers[("time", "convert")], "license_id": lic}])
    assert r.status_code == 409 and "already permanent" in r.json()["detail"]
    unchanged("convert of a permanent license")
    assert server.ledger_check()["ok"]


def test_a_failure_while_issuing_voids_everything(server_factory, tmp_path):
    srv = server_factory()
    cat = make_catalog(srv)
    user = srv.new_user(tokens=300)
    keys = register_device(srv, user)
    key_file = srv.workdir / "data" / "vendor_signing_key.pem"
    good = key_file.read_bytes()
    key_file.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    try:
        r = order(srv, user, keys, [{"offer_id": cat.offers[("perm", "purchase")]}])
        assert r.status_code == 503, r.text
        assert "signing key" in r.json()["detail"]
        assert available(srv, user) == 300
        assert licenses_of(srv, user) == []
        assert srv.api("GET", "/v1/orders", user).json() == []
    finally:
        key_file.write_bytes(good)
    r = order(srv, user, keys, [{"offer_id": cat.offers[("perm", "purchase")]}])
    assert r.status_code == 201, r.text
    assert srv.ledger_check()["ok"]


def _state(server, user):
    return (available(server, user), licenses_of(server, user),
            [o["id"] for o in server.api("GET", "/v1/orders", user).json()])


def _with_a_rental(server, offer: tuple[str, str], quantity: int):
    """A catalog of this test's own and a user who rented from it: (catalog, admin, user,
    device keys, the rental's license id)."""
    own = make_catalog(server)
    user = server.new_user(tokens=500)
    keys = register_device(server, user)
    r = order(server, user, keys, [{"offer_id": own.offers[offer], "quantity": quantity}])
    assert r.status_code == 201, r.text
    return own, server.admin(), user, keys, r.json()["deliveries"][0]["license_id"]


def test_withdrawn_offer_cannot_be_ordered_and_changes_nothing(server):
    own, admin, user, keys, rental = _with_a_rental(server, ("uses", "rent_uses"), 10)
    for kind in (("uses", "rent_uses"), ("perm", "purchase"), ("uses", "convert")):
        w = server.api("DELETE", f"/v1/admin/offers/{own.offers[kind]}", admin)
        assert w.status_code == 200 and w.json()["active"] is False, w.text
    before = _state(server, user)
    sales_before = server.api("GET", "/v1/admin/sales", admin).json()["orders"]
    for items in ([{"offer_id": own.offers[("perm", "purchase")]}],
                  [{"offer_id": own.offers[("uses", "rent_uses")], "quantity": 10}],
                  [{"offer_id": own.offers[("uses", "rent_uses")], "quantity": 10, "license_id": rental}],
                  [{"offer_id": own.offers[("uses", "convert")], "license_id": rental}],
                  # one good item does not carry a withdrawn one
                  [{"offer_id": own.offers[("proc", "rent_processings")], "quantity": 100},
                   {"offer_id": own.offers[("perm", "purchase")]}]):
        r = order(server, user, keys, items)
        assert r.status_code == 404 and "no such offer" in r.json()["detail"], (items, r.text)
        q = server.api("POST", "/v1/quotes", user, json={"items": items, "device_id": keys.device_id})
        assert q.status_code == 404, (items, q.text)
        assert server.api("PUT", "/v1/order-list", user, json={"items": items}).status_code == 404
        assert _state(server, user) == before, items
    assert server.api("GET", "/v1/order-list", user).json()["items"] == []
    assert server.api("GET", "/v1/admin/sales", admin).json()["orders"] == sales_before
    # the license bought before the withdrawal keeps working: its code is still issued
    r = server.api("GET", f"/v1/licenses/{rental}/code", user, params={"device_id": keys.device_id})
    assert r.status_code == 200 and r.json()["serial"] == 1
    # putting the offer back makes it orderable again
    server.api("PUT", f"/v1/admin/products/{own.products['perm']}/offers/purchase", admin, json={"tokens": 100})
    assert order(server, user, keys, [{"offer_id": own.offers[("perm", "purchase")]}]).status_code == 201
    assert server.ledger_check()["ok"]


def test_inactive_product_cannot_be_ordered_and_changes_nothing(server):
    own, admin, user, keys, rental = _with_a_rental(server, ("time", "rent_time"), 7)
    p = server.api("PATCH", f"/v1/admin/products/{own.products['time']}", admin, json={"active": False})
    assert p.status_code == 200 and p.json()["active"] is False
    before = _state(server, user)
    for items in ([{"offer_id": own.offers[("time", "purchase")]}],
                  [{"offer_id": own.offers[("time", "rent_time")], "quantity": 7}],
                  [{"offer_id": own.offers[("time", "rent_time")], "quantity": 30, "license_id": rental}],
                  [{"offer_id": own.offers[("time", "convert")], "license_id": rental}]):
        r = order(server, user, keys, items)
        assert r.status_code == 404 and "no such offer" in r.json()["detail"], (items, r.text)
        assert server.api("POST", "/v1/quotes", user, json={"items": items}).status_code == 404
        assert _state(server, user) == before, items
    server.api("PATCH", f"/v1/admin/products/{own.products['time']}", admin, json={"active": True})
    r = order(server, user, keys, [{"offer_id": own.offers[("time", "convert")], "license_id": rental}])
    assert r.status_code == 201 and r.json()["items"][0]["action"] == "convert", r.text


def test_quote_plans_on_the_users_device_for_the_exact_action(server, cat):
    """The action depends on the device's licenses: with one device the quote
    uses it; with several and no device_id it cannot know (exact_actions false)."""
    user = server.new_user(tokens=500)
    keys = register_device(server, user)
    item = {"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 10}
    first = order(server, user, keys, [item])
    assert first.status_code == 201
    lid = first.json()["deliveries"][0]["license_id"]
    only = server.api("POST", "/v1/quotes", user, json={"items": [item]}).json()
    assert only["exact_actions"] is True and only["device_id"] == keys.device_id
    assert only["items"][0]["action"] == "extend" and only["items"][0]["license_id"] == lid
    other = register_device(server, user)
    blind = server.api("POST", "/v1/quotes", user, json={"items": [item]}).json()
    assert blind["exact_actions"] is False and blind["device_id"] is None
    assert blind["items"][0]["action"] == "new" and blind["items"][0]["license_id"] is None
    exact = server.api("POST", "/v1/quotes", user, json={"items": [item], "device_id": keys.device_id}).json()
    assert exact["items"][0]["action"] == "extend" and exact["items"][0]["license_id"] == lid
    on_other = server.api("POST", "/v1/quotes", user, json={"items": [item], "device_id": other.device_id}).json()
    assert on_other["items"][0]["action"] == "new"
    assert blind["required_tokens"] == exact["required_tokens"] == 5       # the price is the same
    r = order(server, user, keys, [item])
    assert r.json()["items"][0]["action"] == "extend" and r.json()["items"][0]["license_id"] == lid


# ---------------------------------------------------------------- saved order list (FIG 10)

def test_order_list_is_kept_until_ordered_or_cleared(server, cat):
    user = server.new_user(tokens=150)
    keys = register_device(server, user)
    items = [{"offer_id": cat.offers[("perm", "purchase")]},
             {"offer_id": cat.offers[("proc", "rent_processings")], "quantity": 1000}]
    assert server.api("GET", "/v1/order-list", user).json()["items"] == []
    r = server.api("PUT", "/v1/order-list", user, json={"items": items})
    assert r.status_code == 200, r.text
    assert server.api("GET", "/v1/order-list", user).json()["items"] == items
    assert order(server, user, keys, items).status_code == 402       # short: the list stays
    assert server.api("GET", "/v1/order-list", user).json()["items"] == items
    bad = server.api("PUT", "/v1/order-list", user, json={"items": [{"offer_id": 999999}]})
    assert bad.status_code == 404
    assert server.api("GET", "/v1/order-list", user).json()["items"] == items
    server.grant(user, 200)
    assert order(server, user, keys, items).status_code == 201
    assert server.api("GET", "/v1/order-list", user).json()["items"] == []
    server.api("PUT", "/v1/order-list", user, json={"items": items[:1]})
    assert server.api("DELETE", "/v1/order-list", user).status_code == 204
    assert server.api("GET", "/v1/order-list", user).json()["items"] == []


# ---------------------------------------------------------------- products sold (admin)

def test_sales_report_counts_what_was_sold(server_factory):
    srv = server_factory()
    cat = make_catalog(srv)
    user = srv.new_user(tokens=1000)
    keys = register_device(srv, user)
    order(srv, user, keys, [{"offer_id": cat.offers[("perm", "purchase")]},
                            {"offer_id": cat.offers[("proc", "rent_processings")], "quantity": 100}])
    order(srv, user, keys, [{"offer_id": cat.offers[("proc", "rent_processings")], "quantity": 1000}])
    assert srv.api("GET", "/v1/admin/sales", user).status_code == 403
    rep = srv.api("GET", "/v1/admin/sales", srv.admin()).json()
    assert rep["orders"] == 2 and rep["tokens"] == 190
    lines = {(row["product_id"], row["kind"]): row for row in rep["lines"]}
    assert lines[(cat.products["proc"], "rent_processings")]["items_sold"] == 2
    assert lines[(cat.products["proc"], "rent_processings")]["tokens"] == 90
    assert lines[(cat.products["perm"], "purchase")]["cash_cents"] == 1000
    cli = srv.admin_cli("sales-report")
    assert '"tokens": 190' in cli.stdout


def test_sales_report_since_and_until(server):
    """since is inclusive, until exclusive, both RFC 3339 with an offset;
    over HTTP and on the command line. (The shared server has other users'
    orders, so the windows are drawn tightly around this test's orders.)"""
    import json
    import time
    from datetime import datetime

    own = make_catalog(server)
    admin = server.admin()
    user = server.new_user(tokens=1000)
    keys = register_device(server, user)

    def now():
        time.sleep(0.05)
        return datetime.now(UTC)

    t0 = now()
    assert order(server, user, keys, [{"offer_id": own.offers[("perm", "purchase")]}]).status_code == 201
    t1 = now()
    assert order(server, user, keys, [{"offer_id": own.offers[("proc", "rent_processings")],
                                       "quantity": 1000}]).status_code == 201
    assert order(server, user, keys, [{"offer_id": own.offers[("proc", "rent_processings")],
                                       "quantity": 100}]).status_code == 201
    t2 = now()

    def report(since=None, until=None):
        params = {k: v.isoformat() for k, v in (("since", since), ("until", until)) if v is not None}
        r = server.api("GET", "/v1/admin/sales", admin, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def mine(rep):
        return {(row["product_id"], row["kind"]): (row["items_sold"], row["tokens"]) for row in rep["lines"]
                if row["product_id"] in own.products.values()}

    perm, proc = (own.products["perm"], "purchase"), (own.products["proc"], "rent_processings")
    rep = report(t0, t1)
    assert (rep["orders"], rep["tokens"], mine(rep)) == (1, 100, {perm: (1, 100)})
    rep = report(t1, t2)
    assert (rep["orders"], rep["tokens"], mine(rep)) == (2, 90, {proc: (2, 90)})
    rep = report(t0, t2)
    assert (rep["orders"], rep["tokens"], mine(rep)) == (3, 190, {perm: (1, 100), proc: (2, 90)})
    assert mine(report(until=t0)) == {}                                   # before: none of ours
    assert mine(report(since=t2)) == {}                                   # after: none of ours
    assert mine(report(since=t1)) == {proc: (2, 90)}
    assert mine(report(until=t1)) == {perm: (1, 100)}
    assert report(t1, t0)["orders"] == 0                                  # an empty window
    # a time without an offset is refused, over HTTP and on the command line
    r = server.api("GET", "/v1/admin/sales", admin, params={"since": t0.replace(tzinfo=None).isoformat()})
    assert r.status_code == 422
    cli = json.loads(server.admin_cli("sales-report", "--since", t1.isoformat(), "--until", t2.isoformat()).stdout)
    assert (cli["orders"], cli["tokens"]) == (2, 90)
    bad = server.admin_cli("sales-report", "--since", t0.replace(tzinfo=None).isoformat(), check=False)
    assert bad.returncode == 2 and "offset" in bad.stderr
    bad = server.admin_cli("sales-report", "--until", "yesterday", check=False)
    assert bad.returncode == 2 and "not an ISO time" in bad.stderr


# ---------------------------------------------------------------- crashes

def test_server_killed_mid_orders_loses_and_doubles_nothing(server_factory):
    """kill -9 the server while 8 clients place orders; after a restart every
    acknowledged order is there, and retrying the unanswered ones with their
    Idempotency-Key applies each exactly once."""
    import threading
    import time

    import requests

    srv = server_factory()
    cat = make_catalog(srv)
    users = [srv.new_user(tokens=100_000) for _ in range(4)]
    devices = {u.username: register_device(srv, u) for u in users}
    offer = cat.offers[("proc", "rent_processings")]
    acked, unanswered = [], []
    lock, stop = threading.Lock(), threading.Event()

    def client(i):
        u = users[i % len(users)]
        with requests.Session() as s:
            while not stop.is_set():
                key = str(uuid.uuid4())
                body = {"items": [{"offer_id": offer, "quantity": 100}], "device_id": devices[u.username].device_id}
                try:
                    r = s.post(srv.base_url + "/v1/orders", json=body, timeout=10,
                               headers={**u.headers, "Idempotency-Key": key})
                except requests.RequestException:
                    with lock:
                        unanswered.append((u, key, body))
                    return
                with lock:
                    (acked if r.status_code == 201 else unanswered).append((u, key, body))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    srv.proc.kill()                       # no shutdown, no flush: a crash
    srv.proc.wait()
    stop.set()
    for t in threads:
        t.join()
    assert acked, "no order got through before the crash"
    srv.start()
    for u, key, body in unanswered:       # the client retries what it never heard back about
        r = srv.api("POST", "/v1/orders", u, json=body, headers={"Idempotency-Key": key})
        assert r.status_code == 201, r.text
        acked.append((u, key, body))
    for u in users:
        mine = [a for a in acked if a[0] is u]
        receipts = srv.api("GET", "/v1/orders?limit=500", u).json()
        assert len(receipts) == len(mine)
        assert available(srv, u) == 100_000 - 10 * len(mine)
        (lic,) = licenses_of(srv, u)
        assert lic["processings"] == 100 * len(mine)
    assert srv.ledger_check()["ok"]
