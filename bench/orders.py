"""Orders benchmark (issue 4): a real server (SQLite, then PostgreSQL), 16
concurrent HTTP clients placing confirmed orders (each holds tokens, creates
or extends a license, issues a signed and encrypted authorization code, posts
the hold), next to the same server's trivial authenticated GET measured in
the same run.

    .venv/bin/python bench/orders.py [--seconds 10] [--clients 16] [--backends sqlite,postgres]

Checks after the run (exit 1 if any fails): no order lost (every 201 has its
receipt, the user's order count equals the acknowledged orders), none doubled
(retries with the same Idempotency-Key, ~10% of orders, answered identically
and applied once), every user's balance equals start minus the acknowledged
orders' tokens, every license's totals equal the sum of its acknowledged
items, and the ledger is conserved (sums zero, caches equal transfers).
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ledger import cpu_ms_per_request, pct, run_phase  # noqa: E402
from tests.support.server import pg_unavailable_reason, start_server  # noqa: E402
from tests.support.store import DeviceKeys, make_catalog, register_device  # noqa: E402

USERS = 32
START_TOKENS = 1_000_000


def rental_mix(cat) -> list[tuple[int, int, int, int, str]]:
    """The orders both order benchmarks place (this one and bench/floors.py), on
    tests.support.store.make_catalog's catalog: (offer id, product id, quantity, its tokens,
    the license field it adds to), rentals by uses and by processings."""
    uses, proc = cat.offers[("uses", "rent_uses")], cat.offers[("proc", "rent_processings")]
    return [(uses, cat.products["uses"], 10, 5, "uses"), (uses, cat.products["uses"], 50, 20, "uses"),
            (proc, cat.products["proc"], 100, 10, "processings"),
            (proc, cat.products["proc"], 1000, 80, "processings")]


def bench_backend(backend: str, seconds: float, clients: int, workers: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-orders-{backend}-"))
    srv, cleanup = start_server(backend, tmp, workers=workers)
    try:
        cat = make_catalog(srv)
        users = [srv.new_user(tokens=START_TOKENS) for _ in range(USERS)]
        devices = {u.username: register_device(srv, u, DeviceKeys.new()) for u in users}
        # rentals by uses and processings; each order extends (or first creates) one license
        choices = [(offer, quantity, tokens, field) for offer, _, quantity, tokens, field in rental_mix(cat)]
        spent = {u.username: 0 for u in users}
        acked = {u.username: set() for u in users}
        granted = {}      # (username, field) -> total quantity acknowledged
        lock = threading.Lock()
        replays = {"sent": 0, "same": 0}

        def trivial(s: requests.Session, rng: random.Random):
            u = rng.choice(users)
            r = s.get(srv.base_url + "/v1/sessions/current", headers=u.headers, timeout=60)
            if r.status_code != 200:
                raise RuntimeError(f"GET {r.status_code}")

        def place(s: requests.Session, rng: random.Random):
            u = rng.choice(users)
            offer_id, quantity, tokens, field = rng.choice(choices)
            key = str(uuid.uuid4())
            headers = {**u.headers, "Idempotency-Key": key}
            body = {"items": [{"offer_id": offer_id, "quantity": quantity}],
                    "device_id": devices[u.username].device_id, "installed_product_ids": []}
            r = s.post(srv.base_url + "/v1/orders", json=body, headers=headers, timeout=60)
            if r.status_code != 201:
                raise RuntimeError(f"order {r.status_code} {r.text[:100]}")
            answer = r.json()
            if not answer["deliveries"] or not answer["deliveries"][0]["authorization_code"].startswith("TRC1."):
                raise RuntimeError("order without a code")
            with lock:
                spent[u.username] += tokens
                acked[u.username].add(answer["id"])
                granted[(u.username, field)] = granted.get((u.username, field), 0) + quantity
            if rng.random() < 0.1:   # a client retry: same key, same body
                again = s.post(srv.base_url + "/v1/orders", json=body, headers=headers, timeout=60)
                with lock:
                    replays["sent"] += 1
                    replays["same"] += int(again.status_code == 201 and again.json() == answer)

        run_phase(1.0, clients, trivial)                       # warm-up
        pid = srv.proc.pid
        g_n, g_lat, g_err, g_cpu = cpu_ms_per_request(pid, lambda: run_phase(seconds, clients, trivial))
        o_n, o_lat, o_err, o_cpu = cpu_ms_per_request(pid, lambda: run_phase(seconds, clients, place))

        check = srv.ledger_check()
        off_balance, lost, off_license = [], [], []
        for u in users:
            if srv.me(u)["available_tokens"] != START_TOKENS - spent[u.username]:
                off_balance.append(u.username)
            ids = {o["id"] for o in srv.api("GET", "/v1/orders?limit=500", u).json()}
            if ids != acked[u.username]:
                lost.append(u.username)
            for lic in srv.api("GET", "/v1/licenses", u).json():
                field = lic["kind"]
                if lic[field] != granted.get((u.username, field)):
                    off_license.append((u.username, field))
        over_500 = [u.username for u in users if len(acked[u.username]) >= 500]
        result = {
            "backend": backend, "workers": workers,
            "get_rps": g_n / seconds, "get_p50": pct(g_lat, 50), "get_p99": pct(g_lat, 99),
            "order_rps": o_n / seconds, "order_p50": pct(o_lat, 50), "order_p99": pct(o_lat, 99),
            "get_cpu_ms": g_cpu, "order_cpu_ms": o_cpu,
            "orders": sum(len(v) for v in acked.values()),
            "errors": g_err + o_err, "ledger_ok": check["ok"], "totals": check["totals"],
            "off_balance": off_balance, "lost_or_doubled": lost, "off_license": off_license,
            "replays": dict(replays), "unchecked_users": over_500,
        }
        result["ratio"] = result["order_rps"] / result["get_rps"] if result["get_rps"] else 0
        result["ok"] = (check["ok"] and not off_balance and not lost and not off_license and not result["errors"]
                        and replays["same"] == replays["sent"] and not over_500)
        return result
    finally:
        cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--backends", default="sqlite,postgres")
    a = ap.parse_args()
    ok = True
    for backend in a.backends.split(","):
        if backend == "postgres" and (reason := pg_unavailable_reason()):
            print(f"[{backend}] SKIPPED: {reason}")
            continue
        r = bench_backend(backend, a.seconds, a.clients, a.workers)
        print(f"[{backend}, {r['workers']} worker(s), {a.clients} clients, {a.seconds:.0f}s each]")
        print(f"  trivial authenticated GET  : {r['get_rps']:8.1f} req/s  p50 {r['get_p50']:6.1f} ms  p99 {r['get_p99']:6.1f} ms")
        print(f"  confirmed orders (+ codes) : {r['order_rps']:8.1f} req/s  p50 {r['order_p50']:6.1f} ms  p99 {r['order_p99']:6.1f} ms")
        print(f"  ratio orders / GET         : {r['ratio']:.2f}x  (target >= 0.5x)")
        print(f"  server CPU per request     : GET {r['get_cpu_ms']:.2f} ms, order {r['order_cpu_ms']:.2f} ms"
              f" (cost ratio {r['get_cpu_ms'] / r['order_cpu_ms']:.2f}x; the server process only)")
        print(f"  checks: orders={r['orders']} ledger ok={r['ledger_ok']} totals={r['totals']} "
              f"balances off={len(r['off_balance'])} lost/doubled={len(r['lost_or_doubled'])} "
              f"licenses off={len(r['off_license'])} replays same={r['replays']['same']}/{r['replays']['sent']} "
              f"errors={len(r['errors'])}")
        for e in r["errors"][:5]:
            print("   error:", e)
        ok = ok and r["ok"]
    print("ORDERS", "EXACT (none lost, none doubled, ledger conserved)" if ok else "CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
