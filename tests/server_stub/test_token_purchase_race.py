"""POST /v1/token-purchases by card under concurrency: parallel first requests with one
Idempotency-Key charge the card once, over HTTP against the real server on SQLite and
PostgreSQL.

A card charge is outside the database: a request that charged and then lost the race to
store its key cannot take the charge back. So a duplicate must wait for the first request
and replay its answer, never reach the processor. Every charge first inserts (flushes) its
purchase row for the charge's reference, and PostgreSQL's id sequence never rolls back: a
duplicate that got as far as charging leaves a gap before the next purchase's id.
"""
from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

GOOD = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0002"
RACERS = 8


def card(number: str, tokens: int) -> dict:
    return {"tokens": tokens, "method": "card", "card_number": number, "card_expiry": "12/40", "card_cvc": "123"}


def race(server, user, body: dict, key: str) -> list[tuple[int, dict]]:
    """RACERS threads send the same purchase with the same key at once; their answers."""
    barrier = threading.Barrier(RACERS)

    def send(_):
        barrier.wait()
        r = server.api("POST", "/v1/token-purchases", user, json=body, headers={"Idempotency-Key": key})
        return r.status_code, r.json()

    with ThreadPoolExecutor(RACERS) as pool:
        return list(pool.map(send, range(RACERS)))


def purchases(server, user) -> list[dict]:
    r = server.api("GET", "/v1/token-purchases", user)
    assert r.status_code == 200, r.text
    return r.json()


def next_purchase_id(server, user) -> int:
    """The id the next purchase gets (an off-line one: no card involved)."""
    r = server.api("POST", "/v1/token-purchases", user, json={"tokens": 1, "method": "check"})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def test_parallel_card_purchases_with_one_key_charge_once(server):
    u = server.register()
    answers = race(server, u, card(GOOD, 150), str(uuid.uuid4()))
    status, body = answers[0]
    assert status == 201 and body["status"] == "completed", body
    assert all(a == answers[0] for a in answers), answers      # every answer is the first one
    assert [p["id"] for p in purchases(server, u)] == [body["id"]]
    assert server.me(u)["available_tokens"] == 150               # credited once
    # no duplicate reached the processor: no purchase row was inserted and rolled back
    assert next_purchase_id(server, u) == body["id"] + 1
    assert server.ledger_check()["ok"]


def test_parallel_declined_card_with_one_key_is_one_decline(server):
    u = server.register()
    answers = race(server, u, card(DECLINED, 100), str(uuid.uuid4()))
    status, body = answers[0]
    assert status == 402 and body["purchase_status"] == "declined", body
    assert all(a == answers[0] for a in answers), answers
    assert [(p["id"], p["status"]) for p in purchases(server, u)] == [(body["id"], "declined")]
    assert next_purchase_id(server, u) == body["id"] + 1         # the card was tried once
    # one decline counted, not RACERS: two more (new keys) make the three that lock
    codes = [server.api("POST", "/v1/token-purchases", u, json=card(DECLINED, 100),
                        headers={"Idempotency-Key": str(uuid.uuid4())}).status_code for _ in range(3)]
    assert codes == [402, 402, 423]
    assert server.me(u)["available_tokens"] == 0
