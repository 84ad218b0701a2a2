"""Concurrency over HTTP against the real server, on both databases:
no double spend, no deadlock, one application per Idempotency-Key,
and several worker processes sharing one database."""
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests


def _post(server, user, path, body, key=None):
    headers = {"Authorization": f"Bearer {user.token}"}
    if key:
        headers["Idempotency-Key"] = key
    return requests.post(server.base_url + path, json=body, headers=headers, timeout=120)


def _transfer_body(to, n, pin):
    return {"to_username": to.username, "to_full_name": to.full_name, "tokens": n, "pin": pin}


def test_parallel_transfers_never_overspend(server):
    a = server.new_user(tokens=100)
    receivers = [server.register() for _ in range(4)]
    barrier = threading.Barrier(16)

    def attempt(i):
        barrier.wait()
        return _post(server, a, "/v1/transfers", _transfer_body(receivers[i % 4], 10, a.pin)).status_code

    with ThreadPoolExecutor(16) as ex:
        codes = list(ex.map(attempt, range(16)))
    assert sorted(set(codes)) == [201, 402], codes
    assert codes.count(201) == 10
    assert server.me(a)["available_tokens"] == 0
    assert sum(server.me(r)["available_tokens"] for r in receivers) == 100
    assert server.ledger_check()["ok"]


def test_crossing_transfers_do_not_deadlock(server):
    a, b = server.new_user(tokens=500), server.new_user(tokens=500)

    def go(i):
        s, r = (a, b) if i % 2 else (b, a)
        return _post(server, s, "/v1/transfers", _transfer_body(r, 3, s.pin)).status_code

    with ThreadPoolExecutor(12) as ex:
        codes = list(ex.map(go, range(60)))
    assert codes == [201] * 60
    assert server.me(a)["available_tokens"] + server.me(b)["available_tokens"] == 1000
    assert server.me(a)["available_tokens"] == 500
    assert server.ledger_check()["ok"]


def test_same_idempotency_key_in_parallel_applies_once(server):
    u = server.register()
    key = str(uuid.uuid4())
    body = {"tokens": 100, "method": "card", "card_number": "4242424242424242",
            "card_expiry": "12/40", "card_cvc": "123"}
    barrier = threading.Barrier(8)

    def go(_):
        barrier.wait()
        return _post(server, u, "/v1/token-purchases", body, key)

    with ThreadPoolExecutor(8) as ex:
        answers = list(ex.map(go, range(8)))
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["id"] for r in answers}) == 1
    assert server.me(u)["available_tokens"] == 100


def test_several_workers_share_the_database(server_factory):
    srv = server_factory(workers=2)
    a = srv.new_user(tokens=100)
    b = srv.register()

    def go(_):
        return _post(srv, a, "/v1/transfers", _transfer_body(b, 7, a.pin)).status_code

    with ThreadPoolExecutor(10) as ex:
        codes = list(ex.map(go, range(16)))
    assert codes.count(201) == 14 and codes.count(402) == 2, codes
    assert srv.me(a)["available_tokens"] == 2 and srv.me(b)["available_tokens"] == 98
    # a session opened via one worker is valid on every worker
    assert all(srv.api("GET", "/v1/sessions/current", a).status_code == 200 for _ in range(6))
    assert srv.ledger_check()["ok"]
