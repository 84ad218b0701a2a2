"""Orders paid with open tokens at a member (issue 12; docs/mall.md "Orders paid with open
tokens at a member"): a real MSP and two vendors (tests/support/network.py), each its own
process and database, SQLite and PostgreSQL. The customer's lots are made at the MSP as
its issuing does (open_lots.issue_lot on the MSP's database); everything else goes through
the real calls: the quote's plan, the order's authorization, its confirmation, the refund."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from server_stub.db import read_session, write_session
from server_stub.mall import open_lots, records
from server_stub.mall.models import OpenLot, OpenPayment
from server_stub.network.open_money import OpenKind
from tests.mall.test_exchange_network import sign_on_at
from tests.support.network import MallNetwork, funded_user, start_network
from tests.support.server import Server, TestUser
from tests.support.store import Catalog, available, make_catalog, register_device

pytestmark = pytest.mark.timeout(600)


@dataclass
class World:
    net: MallNetwork
    cat_a: Catalog
    cat_b: Catalog


@pytest.fixture(scope="module")
def world(backend, tmp_path_factory):
    net, cleanup = start_network(backend, tmp_path_factory.mktemp(f"open-orders-{backend}"))
    try:
        cat_a, cat_b = make_catalog(net.a), make_catalog(net.b)
        # product 2103: B's "perm" is brand acme's (A makes it); A and B are both in group north
        net.msp.admin("brands-add", "acme", "Acme", net.a_id, "--discount-bp", "1000")
        net.msp.admin("brand-products-add", "acme", net.b_id, str(cat_b.products["perm"]))
        for m in (net.a_id, net.b_id):
            net.msp.admin("group-add", "north", m)
        for v in net.vendors:
            v.server.admin_cli("refresh-directory")
            v.server.admin_cli("set-policy", "--min-tokens", "1")   # small grants activate (FIG 3's MT)
        yield World(net, cat_a, cat_b)
    finally:
        cleanup()


def give(net: MallNetwork, home: str, user_id: str, kind: OpenKind, tokens: int, issuer: str | None = None) -> int:
    """A lot for the customer (home member, home user id) at the MSP, as its issuing makes them."""
    with write_session(net.msp.db_url) as db:
        cust = records.customer(db, home, user_id, "Open Shopper")
        lot, made = open_lots.issue_lot(db, open_lots.LotTerms(
            customer_id=cust.id, kind=kind, issuer=issuer, tokens=tokens, seller_member_id=home, paid_bp=10000,
            expires_at=None, origin=f"issue:{uuid.uuid4()}"))
        assert made
        return lot.id


def lots(net: MallNetwork, home: str, user_id: str) -> dict[str, int]:
    """The customer's open tokens per asset at the MSP (held ones not counted)."""
    with read_session(net.msp.db_url) as db:
        cust = records.customer(db, home, user_id)
        out: dict[str, int] = {}
        for b in open_lots.customer_lots(db, cust.id):
            out[b.lot.asset] = out.get(b.lot.asset, 0) + b.tokens
        return out


def payment_status(net: MallNetwork, operation_id: str) -> str | None:
    with read_session(net.msp.db_url) as db:
        return db.scalar(select(OpenPayment.status).where(OpenPayment.operation_id == operation_id))


def wait_until(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def place(srv: Server, user: TestUser, device_id: str, items: list[dict], payment: str, key: str | None = None):
    return srv.api("POST", "/v1/orders", user, headers={"Idempotency-Key": key or uuid.uuid4().hex},
                   json={"items": items, "device_id": device_id, "payment": payment})


def shopper_at_b(w: World) -> tuple[TestUser, str, TestUser]:
    """A user of A, signed on at B (no closed Token-B); (home user, home user id, user at B)."""
    u = funded_user(w.net.a, 10)      # active at home (10 Token-A, never spent at B)
    uid = str(w.net.a.me(u)["id"])
    at_b, _ = sign_on_at(w.net.a, u, w.net.b, w.net.b_id)
    return u, uid, at_b


def test_paid_wholly_in_open_tokens_at_another_member_with_every_kind(world):
    w, net = world, world.net
    _, uid, at_b = shopper_at_b(w)
    home = net.a_id
    give(net, home, uid, OpenKind.MANUFACTURER, 300, "acme")
    give(net, home, uid, OpenKind.GROUP, 200, "north")
    give(net, home, uid, OpenKind.GIFT_CERTIFICATE, 400, home)
    give(net, home, uid, OpenKind.UNIVERSAL, 300)
    items = [{"offer_id": w.cat_b.offers[("perm", "purchase")]},
             {"offer_id": w.cat_b.offers[("uses", "rent_uses")], "quantity": 10}]
    keys = register_device(net.b, at_b)

    q = net.b.api("POST", "/v1/quotes", at_b, json={"items": items, "device_id": keys.device_id, "payment": "open"})
    assert q.status_code == 200, q.text
    q = q.json()
    price = q["token_price_cents"]
    units = [100 * price, 5 * price]              # perm 100 tokens, uses 10 for 5 tokens; 1 cent a unit
    assert q["unit_value_cents"] == 1 and q["payment"] == "open"
    assert [i["split"] for i in q["items"]] == [{"closed_tokens": 0, "open_units": units[0]},
                                                {"closed_tokens": 0, "open_units": units[1]}]
    assert q["items"][0]["open_kinds"] == ["manufacturer", "manufacturer_free", "group", "gift_certificate",
                                           "universal"]                 # acme's product at B
    assert q["items"][1]["open_kinds"] == ["group", "gift_certificate", "universal"]
    assert q["open_plan_error"] is None and q["open_plan"]["short_units"] == 0 and q["payable"] is True
    # no single kind pays 1050 units: combined, manufacturer first for acme's product, universal last
    by_kind: dict[str, int] = {}
    for p in q["open_plan"]["portions"]:
        by_kind[p["kind"]] = by_kind.get(p["kind"], 0) + p["tokens"]
    assert by_kind == {"manufacturer": 300, "group": 200, "gift_certificate": 400,
                       "universal": sum(units) - 900}
    assert lots(net, home, uid)["open:universal"] == 300          # a quote holds nothing

    key = uuid.uuid4().hex
    r = place(net.b, at_b, keys.device_id, items, "open", key)
    assert r.status_code == 201, r.text
    receipt = r.json()
    assert receipt["status"] == "completed" and receipt["payment"] == "open"
    assert len(receipt["deliveries"]) == 2 and receipt["open_status"] == "confirmed"
    paid = {p["kind"]: p["tokens"] for p in receipt["paid"]}
    assert paid == by_kind and "closed" not in paid
    assert {p["asset"] for p in receipt["paid"]} == {"open:manufacturer:acme", "open:group:north",
                                                     f"open:gift_certificate:{home}", "open:universal"}
    assert receipt["open_balance_after"] == {"universal": 300 - by_kind["universal"]}
    assert available(net.b, at_b) == 0                            # no Token-B moved
    # the MSP confirmed exactly the authorized units; the lots paid once
    assert wait_until(lambda: payment_status(net, receipt["operation_id"]) == "confirmed")
    assert lots(net, home, uid) == {"open:universal": 300 - by_kind["universal"]}
    # the replayed key answers the same receipt and moves nothing again
    again = place(net.b, at_b, keys.device_id, items, "open", key)
    assert again.status_code == 201 and again.json() == receipt
    assert lots(net, home, uid) == {"open:universal": 300 - by_kind["universal"]}
    assert net.b.ledger_check()["ok"] is True


def test_auto_takes_closed_tokens_first_and_a_gift_certificate_gives_change(world):
    w, net = world, world.net
    a = net.a
    u = funded_user(a, 60)
    uid = str(a.me(u)["id"])
    gift = give(net, net.a_id, uid, OpenKind.GIFT_CERTIFICATE, 2500, net.a_id)
    items = [{"offer_id": w.cat_a.offers[("perm", "purchase")]}]     # 100 tokens
    keys = register_device(a, u)
    q = a.api("POST", "/v1/quotes", u, json={"items": items, "device_id": keys.device_id, "payment": "auto"}).json()
    price = q["token_price_cents"]
    open_units = 40 * price
    assert q["items"][0]["split"] == {"closed_tokens": 60, "open_units": open_units}
    assert q["closed_tokens"] == 60 and q["remaining_tokens"] == 0
    assert [(p["lot_id"], p["kind"], p["tokens"]) for p in q["open_plan"]["portions"]] == [
        (gift, "gift_certificate", open_units)]
    assert [c["tokens"] for c in q["open_plan"]["change"]] == [2500 - open_units]

    r = place(a, u, keys.device_id, items, "auto")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["payment"] == "auto" and body["status"] == "completed"
    assert {p["kind"]: p["tokens"] for p in body["paid"]} == {"closed": 60, "gift_certificate": open_units}
    assert [p["asset"] for p in body["paid"] if p["kind"] == "closed"] == [f"token:{net.a_id}"]
    assert (body["available_tokens"], body["balance_after"]) == (60, 0) and available(a, u) == 0
    assert wait_until(lambda: payment_status(net, body["operation_id"]) == "confirmed")
    # the certificate is used whole; its rest came back once as universal tokens
    assert lots(net, net.a_id, uid) == {"open:universal": 2500 - open_units}
    # auto with enough closed tokens is a closed order: the MSP is not asked
    rich = funded_user(a, 500)
    k2 = register_device(a, rich)
    r = place(a, rich, k2.device_id, items, "auto")
    assert r.status_code == 201 and r.json()["paid"] == [
        {"asset": f"token:{net.a_id}", "kind": "closed", "issuer": net.a_id, "tokens": 100}]
    assert "operation_id" not in r.json() and available(a, rich) == 400


def test_short_is_402_with_the_kinds_that_would_help_and_nothing_is_held(world):
    w, net = world, world.net
    a = net.a
    u = funded_user(a, 30)
    uid = str(a.me(u)["id"])
    give(net, net.a_id, uid, OpenKind.UNIVERSAL, 100)
    items = [{"offer_id": w.cat_a.offers[("perm", "purchase")]}]
    keys = register_device(a, u)
    q = a.api("POST", "/v1/quotes", u, json={"items": items, "device_id": keys.device_id, "payment": "auto"}).json()
    assert q["payable"] is False and q["open_plan"]["short_units"] > 0
    key = uuid.uuid4().hex
    r = place(a, u, keys.device_id, items, "auto", key)
    assert r.status_code == 402, r.text
    p = r.json()
    assert p["reason"] == "short" and p["short_units"] == q["open_plan"]["short_units"]
    assert "universal" in p["helpful_kinds"] and "gift_certificate" in p["helpful_kinds"]
    assert available(a, u) == 30 and a.me(u)["tokens"]["held"] == 0          # the closed hold was voided
    assert lots(net, net.a_id, uid) == {"open:universal": 100}
    again = place(a, u, keys.device_id, items, "auto", key)
    assert again.status_code == 402 and again.json() == p                      # the first final answer
    orders = a.api("GET", "/v1/orders", u).json()
    assert [o["status"] for o in orders] == ["failed"] and orders[0]["paid"] == []
    assert a.ledger_check()["ok"] is True


def test_cancel_order_gives_both_kinds_of_tokens_back_and_cancels_the_licenses(world):
    w, net = world, world.net
    a = net.a
    u = funded_user(a, 50)
    uid = str(a.me(u)["id"])
    give(net, net.a_id, uid, OpenKind.GIFT_CERTIFICATE, 1000, net.a_id)
    give(net, net.a_id, uid, OpenKind.UNIVERSAL, 5000)
    before = lots(net, net.a_id, uid)
    items = [{"offer_id": w.cat_a.offers[("perm", "purchase")]}]
    keys = register_device(a, u)
    r = place(a, u, keys.device_id, items, "auto")
    assert r.status_code == 201, r.text
    receipt = r.json()
    assert wait_until(lambda: payment_status(net, receipt["operation_id"]) == "confirmed")
    lic = receipt["deliveries"][0]["license_id"]
    assert a.api("GET", f"/v1/licenses/{lic}/code", u, params={"device_id": keys.device_id}).status_code == 200

    admin = a.admin()
    ck = uuid.uuid4().hex
    c = a.api("POST", f"/v1/admin/orders/{receipt['id']}/cancel", admin, headers={"Idempotency-Key": ck},
              json={"reason": "customer complaint"})
    assert c.status_code == 200, c.text
    assert c.json()["status"] == "cancelled" and c.json()["open_status"] == "refunded"
    assert available(a, u) == 50                                  # the closed tokens back
    code = a.api("GET", f"/v1/licenses/{lic}/code", u, params={"device_id": keys.device_id})
    assert code.status_code == 409 and code.json()["reason"] == "license_cancelled"
    # the MSP refunds through the outbox: every lot back as it was
    assert wait_until(lambda: payment_status(net, receipt["operation_id"]) == "refunded")
    assert lots(net, net.a_id, uid) == before
    # the same key, and the CLI, answer the cancelled order again; nothing moves twice
    again = a.api("POST", f"/v1/admin/orders/{receipt['id']}/cancel", admin, headers={"Idempotency-Key": ck},
                  json={"reason": "customer complaint"})
    assert again.json() == c.json()
    assert '"cancelled"' in a.admin_cli("cancel-order", str(receipt["id"]), "--reason", "again").stdout
    assert available(a, u) == 50 and a.ledger_check()["ok"] is True
    # a failed order cannot be cancelled
    poor = funded_user(a, 1)
    kp = register_device(a, poor)
    failed = place(a, poor, kp.device_id, items, "closed")
    assert failed.status_code == 402
    assert a.admin_cli("cancel-order", "999999", "--reason", "x", check=False).returncode != 0


def test_msp_down_answers_202_then_the_order_completes_once_it_is_back(world):
    w, net = world, world.net
    a = net.a
    u = funded_user(a, 10)
    uid = str(a.me(u)["id"])
    give(net, net.a_id, uid, OpenKind.UNIVERSAL, 5000)
    items = [{"offer_id": w.cat_a.offers[("perm", "purchase")]}]
    keys = register_device(a, u)
    q = a.api("POST", "/v1/quotes", u, json={"items": items, "device_id": keys.device_id, "payment": "auto"})
    assert q.status_code == 200                                   # the unit's value is known from here on
    units = q.json()["open_units"]
    net.msp.stop()
    try:
        q = a.api("POST", "/v1/quotes", u, json={"items": items, "device_id": keys.device_id, "payment": "auto"})
        assert q.json()["open_plan"] is None and q.json()["open_plan_error"]
        key = uuid.uuid4().hex
        r = place(a, u, keys.device_id, items, "auto", key)
        assert r.status_code == 202, r.text
        pending = r.json()
        assert pending["status"] == "pending" and pending["paid"] == [] and pending["deliveries"] == []
        assert a.me(u)["tokens"]["held"] == 10                    # the closed part is held meanwhile
        assert place(a, u, keys.device_id, items, "auto", key).status_code == 202
    finally:
        net.msp.start()
    order_id = pending["id"]

    def done():
        o = a.api("GET", f"/v1/orders/{order_id}", u, params={"wait": 5}).json()
        return o if o["status"] != "pending" else None

    final = wait_until(done, timeout=120)
    assert final and final["status"] == "completed", final
    assert {p["kind"]: p["tokens"] for p in final["paid"]} == {"closed": 10, "universal": units}
    replay = place(a, u, keys.device_id, items, "auto", key)
    assert replay.status_code == 201 and replay.json()["id"] == order_id
    assert wait_until(lambda: payment_status(net, final["operation_id"]) == "confirmed")
    assert lots(net, net.a_id, uid) == {"open:universal": 5000 - units}      # taken once
    with read_session(net.msp.db_url) as db:
        cust = records.customer(db, net.a_id, uid)
        assert db.scalar(select(OpenLot.id).where(OpenLot.customer_id == cust.id, OpenLot.kind == "universal")
                         .order_by(OpenLot.id.desc()).limit(1)) is not None
    assert available(a, u) == 0 and a.ledger_check()["ok"] is True


def test_a_license_met_meanwhile_voids_both_the_closed_hold_and_the_authorization(world):
    w, net = world, world.net
    a = net.a
    u = funded_user(a, 10)
    uid = str(a.me(u)["id"])
    give(net, net.a_id, uid, OpenKind.UNIVERSAL, 5000)
    rent = [{"offer_id": w.cat_a.offers[("time", "rent_time")], "quantity": 7}]      # 15 tokens
    keys = register_device(a, u)
    assert a.api("POST", "/v1/quotes", u, json={"items": rent, "payment": "auto"}).status_code == 200
    net.msp.stop()
    try:
        key = uuid.uuid4().hex
        r = place(a, u, keys.device_id, rent, "auto", key)
        assert r.status_code == 202, r.text                   # 10 closed tokens held, 5 tokens' worth open
        a.admin_cli("grant", u.username, "250", "--kind", "standard")
        # meanwhile the same product bought outright on the same device: the rental can no longer apply
        bought = place(a, u, keys.device_id, [{"offer_id": w.cat_a.offers[("time", "purchase")]}], "closed")
        assert bought.status_code == 201, bought.text
    finally:
        net.msp.start()
    order_id = r.json()["id"]

    def done():
        o = a.api("GET", f"/v1/orders/{order_id}", u, params={"wait": 5}).json()
        return o if o["status"] != "pending" else None

    final = wait_until(done, timeout=120)
    assert final and final["status"] == "failed" and final["open_status"] == "voided", final
    replay = place(a, u, keys.device_id, rent, "auto", key)
    assert replay.status_code == 409 and replay.json()["reason"] == "local_failure"
    assert "already permanent" in replay.json()["detail"]
    assert available(a, u) == 10 and a.me(u)["tokens"]["held"] == 0     # the closed hold voided
    assert wait_until(lambda: payment_status(net, final["operation_id"]) == "voided")
    assert lots(net, net.a_id, uid) == {"open:universal": 5000}          # and the MSP's hold
    assert a.ledger_check()["ok"] is True


def test_an_authorization_too_close_to_its_hold_expiry_is_voided_not_completed(backend, tmp_path):
    # an MSP that holds open payments only 2 minutes: within the vendor's 5-minute margin
    net, cleanup = start_network(backend, tmp_path, msp_env={"TOKENRENT_MSP_OPEN_PAYMENT_HOLD_SECONDS": "120"})
    try:
        a = net.a
        a.admin_cli("set-policy", "--min-tokens", "1")
        cat = make_catalog(a)
        u = funded_user(a, 5)
        uid = str(a.me(u)["id"])
        give(net, net.a_id, uid, OpenKind.UNIVERSAL, 5000)
        keys = register_device(a, u)
        r = place(a, u, keys.device_id, [{"offer_id": cat.offers[("perm", "purchase")]}], "auto")
        assert r.status_code == 409, r.text
        assert r.json()["reason"] == "local_failure" and "too late" in r.json()["detail"]
        assert available(a, u) == 5 and a.me(u)["tokens"]["held"] == 0
        assert [o["status"] for o in a.api("GET", "/v1/orders", u).json()] == ["failed"]
        assert a.api("GET", "/v1/licenses", u).json() == []
        with read_session(net.msp.db_url) as db:
            op = db.scalar(select(OpenPayment.operation_id))
        assert wait_until(lambda: payment_status(net, op) == "voided")
        assert lots(net, net.a_id, uid) == {"open:universal": 5000}
    finally:
        cleanup()


def test_a_store_outside_a_mall_takes_auto_with_its_own_tokens_and_refuses_open(server):
    cat = make_catalog(server)
    u = server.new_user(tokens=150)
    keys = register_device(server, u)
    items = [{"offer_id": cat.offers[("perm", "purchase")]}]                   # 100 tokens
    q = server.api("POST", "/v1/quotes", u, json={"items": items, "payment": "auto"}).json()
    assert q["payable"] is True and q["items"][0]["split"]["closed_tokens"] == 100 and q["open_plan"] is None
    r = place(server, u, keys.device_id, items, "open")
    assert r.status_code == 409 and r.json()["reason"] == "not_in_mall"
    assert available(server, u) == 150
    r = place(server, u, keys.device_id, items, "auto")
    assert r.status_code == 201, r.text
    assert r.json()["payment"] == "auto" and [p["kind"] for p in r.json()["paid"]] == ["closed"]
    assert available(server, u) == 50
    dear = [{"offer_id": cat.offers[("time", "purchase")]}]                     # 250 tokens
    short = server.api("POST", "/v1/quotes", u, json={"items": dear, "payment": "auto"}).json()
    assert short["payable"] is False and "mall" in short["open_plan_error"]
    assert short["items"][0]["split"] == {"closed_tokens": 50, "open_units": None}
    r = place(server, u, keys.device_id, dear, "auto")
    assert r.status_code == 409 and r.json()["reason"] == "not_in_mall"
    assert available(server, u) == 50
