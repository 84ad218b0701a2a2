"""FIG 15 end to end: an MSP and two vendors as separate processes, each on its
own database (SQLite or PostgreSQL), joined with invitations; a user of A
exchanges Token-A into Token-B, signs on at B with A's assertion (no second
registration) and finds the tokens there. Then the faults: a blocked member,
a member that is down (the exchange stays pending, then completes), and the
first answer of every step being final."""
from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.support.network import join
from tests.support.server import TestUser

pytestmark = pytest.mark.timeout(600)



@pytest.fixture
def network(msp, server_factory):
    a, b = server_factory(), server_factory()
    a_id = join(msp, a, "Mall A", 10, "Token-A")
    b_id = join(msp, b, "Mall B", 5, "Token-B")
    return a, a_id, b, b_id


def funded_user(vendor, tokens):
    u = vendor.register()
    vendor.admin_cli("grant", u.username, str(tokens), "--kind", "standard")
    return u


def exchange(vendor, user, to_member, tokens, key=None):
    q = vendor.api("POST", "/v1/exchange-quotes", user, json={"to_member": to_member, "tokens": tokens})
    assert q.status_code == 201, q.text
    r = vendor.api("POST", "/v1/exchanges", user, json={"quote_id": q.json()["quote_id"]},
                   headers={"Idempotency-Key": key or uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    return q.json(), r.json()


def wait_for(vendor, user, exchange_id, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        x = vendor.api("GET", f"/v1/exchanges/{exchange_id}", user).json()
        if x["status"] != "pending" or time.monotonic() > deadline:
            return x
        time.sleep(0.2)


def sign_on_at(home, user, other, other_id):
    r = home.api("POST", "/v1/mall-assertions", user, json={"audience": other_id})
    assert r.status_code == 201, r.text
    s = other.api("POST", "/v1/sessions", json={"assertion": r.json()["assertion"]})
    assert s.status_code == 200, s.text
    return TestUser(user.username, "", "", user.full_name, token=s.json()["token"]), r.json()["assertion"]


def test_exchange_then_shop_at_the_other_member_without_registering(msp, network):
    a, a_id, b, b_id = network
    mall = a.api("GET", "/v1/mall").json()
    assert mall["member_id"] == a_id
    u = funded_user(a, 150)
    quote, started = exchange(a, u, b_id, 100)
    assert (quote["tokens_from"], quote["tokens_to"], quote["value_cents"]) == (100, 200, 1000)
    assert started["status"] == "pending"
    done = wait_for(a, u, started["id"])
    assert done["status"] == "completed", done
    assert a.me(u)["available_tokens"] == 50
    at_b, assertion = sign_on_at(a, u, b, b_id)
    me_b = b.api("GET", "/v1/me", at_b).json()
    assert me_b["available_tokens"] == 200 and me_b["full_name"] == u.full_name
    # the assertion is spent; a second sign-on needs a new one and reaches the same account
    assert b.api("POST", "/v1/sessions", json={"assertion": assertion}).status_code == 401
    again, _ = sign_on_at(a, u, b, b_id)
    assert b.api("GET", "/v1/me", again).json()["id"] == me_b["id"]
    # both statements show it; both ledgers and the MSP's books are whole
    kinds_a = [t["kind"] for t in a.api("GET", "/v1/ledger", u).json()["entries"]]
    kinds_b = [t["kind"] for t in b.api("GET", "/v1/ledger", at_b).json()["entries"]]
    assert "exchange_out" in kinds_a and "exchange_in" in kinds_b
    for vendor in (a, b):
        assert json.loads(vendor.admin_cli("verify-ledger").stdout)["ok"] is True
    assert msp.admin_json("verify-books")["ok"] is True


def test_a_replayed_confirm_gets_the_first_answer_and_moves_once(network):
    a, _a_id, _b, b_id = network
    u = funded_user(a, 300)
    q = a.api("POST", "/v1/exchange-quotes", u, json={"to_member": b_id, "tokens": 100}).json()
    key = uuid.uuid4().hex
    first = a.api("POST", "/v1/exchanges", u, json={"quote_id": q["quote_id"]}, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    assert wait_for(a, u, first.json()["id"])["status"] == "completed"
    again = a.api("POST", "/v1/exchanges", u, json={"quote_id": q["quote_id"]}, headers={"Idempotency-Key": key})
    assert (again.status_code, again.json()) == (201, first.json())
    assert a.me(u)["available_tokens"] == 200


def test_a_blocked_member_takes_no_new_exchange_and_the_tokens_come_back(msp, network):
    a, _a_id, _b, b_id = network
    u = funded_user(a, 100)
    q = a.api("POST", "/v1/exchange-quotes", u, json={"to_member": b_id, "tokens": 100}).json()
    msp.admin("block", b_id, "--reason", "below standards")
    r = a.api("POST", "/v1/exchanges", u, json={"quote_id": q["quote_id"]}, headers={"Idempotency-Key": "blk-1"})
    if r.status_code == 201:                         # our copy of the directory was still the older one
        x = wait_for(a, u, r.json()["id"])
        assert x["status"] == "failed" and "blocked" in x["reason"], x
    else:
        assert r.status_code == 403, r.text
    assert a.me(u)["available_tokens"] == 100
    msp.admin("unblock", b_id)


def test_a_member_that_is_down_leaves_the_exchange_pending_until_it_returns(network):
    a, _a_id, b, b_id = network
    u = funded_user(a, 100)
    q = a.api("POST", "/v1/exchange-quotes", u, json={"to_member": b_id, "tokens": 100}).json()
    b.stop()
    r = a.api("POST", "/v1/exchanges", u, json={"quote_id": q["quote_id"]}, headers={"Idempotency-Key": "down-1"})
    assert r.status_code == 201
    time.sleep(3)
    x = a.api("GET", f"/v1/exchanges/{r.json()['id']}", u).json()
    assert x["status"] == "pending"
    assert a.me(u)["available_tokens"] == 0          # held, not lost
    b.start()
    assert wait_for(a, u, r.json()["id"], timeout=120)["status"] == "completed"


def audit_when_quiet(msp, timeout=60):
    """`msp admin audit` once nothing is in flight: the audit is defined after quiescence, and a
    member's notices or backup may still be in its outbox when the exchanges have completed.
    Any other problem is returned at once."""
    deadline = time.monotonic() + timeout
    while True:
        res = msp.admin("audit", check=False)
        if res.returncode == 0:
            return json.loads(res.stdout)
        try:
            problems = json.loads(res.stderr.strip().splitlines()[-1]).get("problems") or [res.stderr]
        except (ValueError, IndexError, AttributeError):
            problems = [res.stderr]
        if time.monotonic() > deadline or not all("still pending" in p for p in problems):
            raise AssertionError(f"msp admin audit failed ({res.returncode}): {res.stdout}\n{res.stderr}")
        time.sleep(0.5)


def test_the_audit_holds_after_exchanges_and_finds_a_forged_record(msp_factory, server_factory):
    # its own MSP: the audit asks every member, and the module's shared MSP knows stopped ones
    msp = msp_factory()
    a, b = server_factory(), server_factory()
    join(msp, a, "Mall A", 10, "Token-A")
    b_id = join(msp, b, "Mall B", 5, "Token-B")
    u = funded_user(a, 300)
    ids = [exchange(a, u, b_id, 100)[1]["id"] for _ in range(2)]
    for x in ids:
        assert wait_for(a, u, x)["status"] == "completed"
    out = audit_when_quiet(msp)
    assert out["ok"] is True and out["completed"] >= 2
    # a token record at the MSP that disagrees with a member is found
    import sqlalchemy as sa
    engine = sa.create_engine(msp.db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE token_records SET exchanged_in = exchanged_in + 1 WHERE member_id = :m"),
                     {"m": b_id})
    engine.dispose()
    res = msp.admin("audit", check=False)
    assert res.returncode == 2 and b_id in res.stderr and "issued for exchanges" in res.stderr
