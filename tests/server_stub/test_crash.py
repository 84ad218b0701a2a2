"""kill -9 in the middle of token movements: after a restart the ledger is
whole, and retrying every request with its Idempotency-Key applies each one
exactly once (acknowledged or not)."""
import os
import signal
import threading
import time
import uuid

import requests

from tests.support.server import Server


def test_kill_9_during_transfers_loses_and_duplicates_nothing(backend, server_factory):
    srv = server_factory()
    a = srv.new_user(tokens=5000)
    b = srv.new_user(tokens=100)
    sent: dict[str, int] = {}          # key -> tokens (every request we fired)
    lock = threading.Lock()
    stop = threading.Event()

    def client(i):
        s = requests.Session()
        while not stop.is_set():
            key, n = str(uuid.uuid4()), 1 + (i % 5)
            with lock:
                sent[key] = n
            try:
                s.post(srv.base_url + "/v1/transfers", timeout=5,
                       headers={**a.headers, "Idempotency-Key": key},
                       json={"to_username": b.username, "to_full_name": b.full_name, "tokens": n, "pin": a.pin})
            except requests.RequestException:
                return  # the server died under us

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(sent) > 10

    again = Server(srv.db_url, srv.workdir, backend=backend).start()
    try:
        admin = again.admin()
        assert again.api("GET", "/v1/admin/ledger-check", admin).json()["ok"]
        again.sign_in(a)
        for key, n in sent.items():   # the client retries everything it is unsure about
            r = again.api("POST", "/v1/transfers", a, headers={"Idempotency-Key": key},
                          json={"to_username": b.username, "to_full_name": b.full_name, "tokens": n, "pin": a.pin})
            assert r.status_code == 201, r.text
        total = sum(sent.values())
        assert again.me(a)["available_tokens"] == 5000 - total
        again.sign_in(b)
        assert again.me(b)["available_tokens"] == 100 + total
        assert again.api("GET", "/v1/admin/ledger-check", admin).json()["ok"]
    finally:
        again.stop()
