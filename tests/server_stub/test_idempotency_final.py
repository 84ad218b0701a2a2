"""The first answer to an Idempotency-Key is final, refusals included (docs/api.md,
"Idempotency"), over HTTP against the real server on SQLite and PostgreSQL:

- a refusal the operation decided (402 short of tokens or declined card, 403 wrong PIN,
  404, 409) is stored with the key: a retry with that key gets the same answer and never
  succeeds later, even once the refusal's cause is gone; a new key runs again;
- a request refused before it ran (401, 422, 423) stores nothing: the key runs later;
- under concurrency every answer for one key is identical, tokens move at most once and
  the ledger sums to zero.
"""
from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import create_engine, text

from server_stub.db import normalize_url
from tests.support.store import available, licenses_of, make_catalog, order, register_device

DECLINED = "4000 0000 0000 0002"
NO_FUNDS = "4000 0000 0000 9995"
GOOD = "4242 4242 4242 4242"


def card(number, tokens=100):
    return {"tokens": tokens, "method": "card", "card_number": number, "card_expiry": "12/40", "card_cvc": "123"}


def transfer_body(to, tokens, pin):
    return {"to_username": to.username, "to_full_name": to.full_name, "tokens": tokens, "pin": pin}


def post(server, user, path, body, key):
    return server.api("POST", path, user, json=body, headers={"Idempotency-Key": key})


def new_key() -> str:
    return str(uuid.uuid4())


def same_answer(a: requests.Response, b: requests.Response) -> bool:
    return (a.status_code, a.json()) == (b.status_code, b.json())


def statement(server, user) -> list[dict]:
    r = server.api("GET", "/v1/ledger", user)
    assert r.status_code == 200, r.text
    return r.json()["entries"]


def stored_statuses(server, user, key: str) -> list[int]:
    """The status of the idempotency record kept for (user, key), read from the server's database."""
    user_id = server.api("GET", "/v1/sessions/current", user).json()["user_id"]
    engine = create_engine(normalize_url(server.db_url))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT status_code FROM idempotency_records "
                                          "WHERE user_id = :u AND key = :k"), {"u": user_id, "k": key}).scalars())
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def cat(server):
    return make_catalog(server)


# ---------------------------------------------------------------- 402, then top up, then retry

def test_transfer_short_of_tokens_stays_402_after_a_top_up(server):
    a, b = server.new_user(tokens=100), server.register()
    key = new_key()
    first = post(server, a, "/v1/transfers", transfer_body(b, 150, a.pin), key)
    assert first.status_code == 402, first.text
    assert first.json()["shortage"] == 50
    server.grant(a, 100)                                    # now 200: enough for 150
    entries = statement(server, a)
    again = post(server, a, "/v1/transfers", transfer_body(b, 150, a.pin), key)
    assert same_answer(first, again), again.text
    assert available(server, a) == 200 and available(server, b) == 0
    assert statement(server, a) == entries                  # nothing moved
    assert stored_statuses(server, a, key) == [402]
    fresh = post(server, a, "/v1/transfers", transfer_body(b, 150, a.pin), new_key())
    assert fresh.status_code == 201, fresh.text
    assert available(server, a) == 50 and available(server, b) == 150
    assert server.ledger_check()["ok"]


def test_card_purchase_declined_for_funds_stays_402_and_counts_one_decline(server):
    u = server.register()
    key = new_key()
    first = post(server, u, "/v1/token-purchases", card(NO_FUNDS), key)
    assert first.status_code == 402, first.text
    body = first.json()
    assert body["decline_code"] == "insufficient_funds" and body["purchase_status"] == "declined" and body["status"] == 402
    server.grant(u, 100)                                    # the wallet is topped up meanwhile
    for _ in range(3):
        again = post(server, u, "/v1/token-purchases", card(NO_FUNDS), key)
        assert same_answer(first, again), again.text
    # the same key with another body (a good card) is another request: 422, nothing stored
    other = post(server, u, "/v1/token-purchases", card(GOOD), key)
    assert other.status_code == 422, other.text
    assert stored_statuses(server, u, key) == [402]
    purchases = server.api("GET", "/v1/token-purchases", u).json()
    assert [(p["id"], p["status"]) for p in purchases] == [(body["id"], "declined")]   # one decline
    assert available(server, u) == 100                      # only the grant
    # two more declines with new keys make three: the lockout counts the retried key once
    for expected in (402, 402, 423):
        assert post(server, u, "/v1/token-purchases", card(DECLINED), new_key()).status_code == expected
    assert server.ledger_check()["ok"]


def test_card_purchase_retry_after_a_decline_needs_a_new_key(server):
    u = server.register()
    key = new_key()
    first = post(server, u, "/v1/token-purchases", card(DECLINED), key)
    assert first.status_code == 402, first.text
    assert same_answer(first, post(server, u, "/v1/token-purchases", card(DECLINED), key))
    fresh = post(server, u, "/v1/token-purchases", card(GOOD), new_key())
    assert fresh.status_code == 201, fresh.text
    assert available(server, u) == 100
    assert same_answer(first, post(server, u, "/v1/token-purchases", card(DECLINED), key))


def test_order_short_of_tokens_stays_402_after_a_top_up(server, cat):
    user = server.new_user(tokens=100)
    keys = register_device(server, user)
    items = [{"offer_id": cat.offers[("perm", "purchase")]},                         # 100
             {"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 50}]        # + 20
    key = new_key()
    first = order(server, user, keys, items, key=key)
    assert first.status_code == 402, first.text
    assert (first.json()["required_tokens"], first.json()["shortage"]) == (120, 20)
    server.grant(user, 100)
    entries = statement(server, user)
    again = order(server, user, keys, items, key=key)
    assert same_answer(first, again), again.text
    assert available(server, user) == 200
    assert statement(server, user) == entries
    assert licenses_of(server, user) == [] and server.api("GET", "/v1/orders", user).json() == []
    fresh = order(server, user, keys, items, key=new_key())
    assert fresh.status_code == 201, fresh.text
    assert available(server, user) == 80 and len(licenses_of(server, user)) == 2
    assert same_answer(first, order(server, user, keys, items, key=key))   # still the first answer
    assert server.ledger_check()["ok"]


# ---------------------------------------------------------------- 403, 404, 409

def test_wrong_pin_is_final_for_its_key_and_counts_once(server):
    a, b = server.new_user(tokens=100), server.register()
    key = new_key()
    first = post(server, a, "/v1/transfers", transfer_body(b, 10, "9999"), key)
    assert first.status_code == 403, first.text
    # the PIN is not in the request's fingerprint: the right PIN with the same key is
    # the same request, and gets the first answer (the client sends a new key)
    for pin in (a.pin, "9999", a.pin):
        again = post(server, a, "/v1/transfers", transfer_body(b, 10, pin), key)
        assert same_answer(first, again), again.text
    assert available(server, a) == 100 and available(server, b) == 0
    # the replays counted nothing: three more wrong PINs make four failures, not a lockout
    for _ in range(3):
        assert post(server, a, "/v1/transfers", transfer_body(b, 10, "9999"), new_key()).status_code == 403
    assert post(server, a, "/v1/transfers", transfer_body(b, 10, a.pin), new_key()).status_code == 201
    assert available(server, b) == 10


def test_parallel_wrong_pins_with_one_key_count_one_failure(server):
    a, b = server.new_user(tokens=100), server.register()
    key = new_key()
    barrier = threading.Barrier(8)

    def go(_):
        barrier.wait()
        return post(server, a, "/v1/transfers", transfer_body(b, 10, "9999"), key)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(go, range(8)))
    assert {(r.status_code, r.text) for r in answers} == {(403, answers[0].text)}
    assert stored_statuses(server, a, key) == [403]
    for _ in range(3):      # failures 2, 3 and 4 of 5: still no lockout
        assert post(server, a, "/v1/transfers", transfer_body(b, 10, "9999"), new_key()).status_code == 403
    assert post(server, a, "/v1/transfers", transfer_body(b, 10, a.pin), new_key()).status_code == 201


def test_unknown_recipient_404_stays_404_once_the_user_exists(server):
    a = server.new_user(tokens=100)
    username = "later_" + uuid.uuid4().hex[:8]
    body = {"to_username": username, "to_full_name": "Later User", "tokens": 10, "pin": a.pin}
    key = new_key()
    first = post(server, a, "/v1/transfers", body, key)
    assert first.status_code == 404, first.text
    b = server.register(username=username, full_name="Later User")
    assert same_answer(first, post(server, a, "/v1/transfers", body, key))
    assert available(server, a) == 100 and available(server, b) == 0
    assert post(server, a, "/v1/transfers", body, new_key()).status_code == 201
    assert available(server, b) == 10


def test_admin_grant_404_stays_404_once_the_user_exists(server):
    admin = server.admin()
    username = "granted_" + uuid.uuid4().hex[:8]
    body = {"username": username, "tokens": 40}
    key = new_key()
    first = post(server, admin, "/v1/admin/grants", body, key)
    assert first.status_code == 404, first.text
    u = server.register(username=username)
    assert same_answer(first, post(server, admin, "/v1/admin/grants", body, key))
    assert available(server, u) == 0
    assert post(server, admin, "/v1/admin/grants", body, new_key()).status_code == 201
    assert available(server, u) == 40


def test_admin_confirm_of_a_settled_purchase_409_is_stored(server):
    u, admin = server.register(), server.admin()
    p = server.api("POST", "/v1/token-purchases", u, json={"tokens": 120, "method": "check"}).json()
    path = f"/v1/admin/token-purchases/{p['id']}"
    assert server.api("POST", path + "/cancel", admin).status_code == 200
    key = new_key()
    first = server.api("POST", path + "/confirm", admin, headers={"Idempotency-Key": key})
    assert first.status_code == 409, first.text
    assert "cancelled" in first.json()["detail"]
    assert same_answer(first, server.api("POST", path + "/confirm", admin, headers={"Idempotency-Key": key}))
    assert stored_statuses(server, admin, key) == [409]
    assert available(server, u) == 0


def test_admin_credit_then_409_on_a_second_credit_is_stored(server):
    u, admin = server.register(), server.admin()
    p = server.api("POST", "/v1/token-purchases", u, json={"tokens": 120, "method": "check"}).json()
    path = f"/v1/admin/token-purchases/{p['id']}/credit"
    assert server.api("POST", path, admin, headers={"Idempotency-Key": new_key()}).status_code == 200
    key = new_key()
    first = server.api("POST", path, admin, headers={"Idempotency-Key": key})
    assert first.status_code == 409, first.text
    assert same_answer(first, server.api("POST", path, admin, headers={"Idempotency-Key": key}))
    assert stored_statuses(server, admin, key) == [409]
    assert available(server, u) == 120


# ---------------------------------------------------------------- refused before running: nothing stored

def test_malformed_422_stores_nothing(server):
    a, b = server.new_user(tokens=100), server.register()
    key = new_key()
    bad = {**transfer_body(b, 10, a.pin), "tokens": "10"}                    # a string: pydantic 422
    assert post(server, a, "/v1/transfers", bad, key).status_code == 422
    to_self = transfer_body(a, 10, a.pin)                                    # the service's own 422
    assert post(server, a, "/v1/transfers", to_self, key).status_code == 422
    assert stored_statuses(server, a, key) == []
    ok = post(server, a, "/v1/transfers", transfer_body(b, 10, a.pin), key)
    assert ok.status_code == 201, ok.text
    assert available(server, b) == 10


def test_bad_card_data_422_stores_nothing(server):
    u = server.register()
    key = new_key()
    expired = {**card(GOOD), "card_expiry": "01/20"}
    assert post(server, u, "/v1/token-purchases", expired, key).status_code == 422
    assert stored_statuses(server, u, key) == []
    assert post(server, u, "/v1/token-purchases", card(GOOD), key).status_code == 201


def test_unauthenticated_401_stores_nothing(server):
    a, b = server.new_user(tokens=100), server.register()
    key = new_key()
    r = server.api("POST", "/v1/transfers", "not-a-session", json=transfer_body(b, 10, a.pin),
                   headers={"Idempotency-Key": key})
    assert r.status_code == 401
    assert post(server, a, "/v1/transfers", transfer_body(b, 10, a.pin), key).status_code == 201
    assert available(server, b) == 10


def test_locked_423_stores_nothing(server_factory):
    srv = server_factory(env={"TOKENRENT_LOCKOUT_SECONDS": "2"})
    a, b = srv.new_user(tokens=100), srv.register()
    codes = [post(srv, a, "/v1/transfers", transfer_body(b, 10, "9999"), new_key()).status_code
             for _ in range(5)]
    assert codes == [403, 403, 403, 403, 423]               # the fifth failure engages the lock
    key = new_key()
    assert post(srv, a, "/v1/transfers", transfer_body(b, 10, a.pin), key).status_code == 423
    assert stored_statuses(srv, a, key) == []
    time.sleep(2.2)
    ok = post(srv, a, "/v1/transfers", transfer_body(b, 10, a.pin), key)
    assert ok.status_code == 201, ok.text
    assert same_answer(ok, post(srv, a, "/v1/transfers", transfer_body(b, 10, a.pin), key))
    assert available(srv, b) == 10


# ---------------------------------------------------------------- concurrency

def _hammer(keys: list[str], send, top_up, copies: int, top_ups: int) -> dict[str, list[requests.Response]]:
    """Send every key `copies` times from parallel threads while `top_up` runs
    `top_ups` times beside them; the answers per key."""
    jobs = [k for k in keys for _ in range(copies)]
    barrier = threading.Barrier(len(jobs) + 1)

    def one(k):
        barrier.wait()
        return k, send(k)

    def topper():
        barrier.wait()
        for _ in range(top_ups):
            top_up()

    with ThreadPoolExecutor(len(jobs) + 1) as pool:
        toppings = pool.submit(topper)
        results = list(pool.map(one, jobs))
        toppings.result()
    out: dict[str, list[requests.Response]] = {k: [] for k in keys}
    for k, r in results:
        out[k].append(r)
    return out


def _one_answer_per_key(answers: dict[str, list[requests.Response]]) -> dict[str, int]:
    statuses = {}
    for k, rs in answers.items():
        seen = {(r.status_code, r.text) for r in rs}
        assert len(seen) == 1, (k, seen)
        assert rs[0].status_code in (201, 402), rs[0].text
        statuses[k] = rs[0].status_code
    return statuses


def test_parallel_transfers_with_shared_keys_during_top_ups(server):
    a, b = server.new_user(tokens=100), server.register()
    server.grant(b, 100)
    a_before, b_before = available(server, a), available(server, b)
    keys = [new_key() for _ in range(8)]
    answers = _hammer(keys, lambda k: post(server, a, "/v1/transfers", transfer_body(b, 40, a.pin), k),
                      lambda: server.grant(a, 30), copies=4, top_ups=4)
    statuses = _one_answer_per_key(answers)
    moved = 40 * list(statuses.values()).count(201)
    assert available(server, a) == a_before + 4 * 30 - moved
    assert available(server, b) == b_before + moved
    # every key replays its first answer afterwards as well
    for k, rs in answers.items():
        assert same_answer(rs[0], post(server, a, "/v1/transfers", transfer_body(b, 40, a.pin), k))
    assert available(server, b) == b_before + moved
    assert server.ledger_check()["ok"]


def test_parallel_orders_with_shared_keys_during_top_ups(server, cat):
    user = server.new_user(tokens=100)
    keys_dev = register_device(server, user)
    # leave 20 tokens: six orders of 20 need 120, the top-ups bring 60 (some must be 402)
    assert order(server, user, keys_dev, [{"offer_id": cat.offers[("proc", "rent_processings")],
                                           "quantity": 1000}]).status_code == 201      # 80 tokens
    before = available(server, user)
    item = [{"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 50}]          # 20 tokens
    keys = [new_key() for _ in range(6)]
    answers = _hammer(keys, lambda k: order(server, user, keys_dev, item, key=k),
                      lambda: server.grant(user, 20), copies=4, top_ups=3)
    statuses = _one_answer_per_key(answers)
    placed = list(statuses.values()).count(201)
    assert available(server, user) == before + 3 * 20 - 20 * placed
    uses = [lic for lic in licenses_of(server, user) if lic["product_id"] == cat.products["uses"]]
    assert sum(lic["uses"] for lic in uses) == 50 * placed
    assert len(server.api("GET", "/v1/orders", user).json()) == 1 + placed
    for k, rs in answers.items():
        assert same_answer(rs[0], order(server, user, keys_dev, item, key=k))
    assert server.ledger_check()["ok"]
