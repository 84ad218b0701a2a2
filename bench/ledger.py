"""Ledger benchmark (issue 2): a real server (SQLite, then PostgreSQL), 16
concurrent HTTP clients doing random transfers and card purchases for a fixed
time, then conservation checks, next to the same server's throughput on a
trivial authenticated GET measured in the same run.

    .venv/bin/python bench/ledger.py [--seconds 10] [--clients 16] [--backends sqlite,postgres]

Checks after the run (exit 1 if any fails): ledger sum zero per currency,
cached balances equal transfer sums, no wallet below its limit, every
acknowledged request applied exactly once (each user's balance equals the
start balance plus the acknowledged movements), and retries with the same
Idempotency-Key (sent for ~10% of requests) answered identically, applied once.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.server import TestUser, pg_unavailable_reason, start_server  # noqa: E402

USERS = 32
START_TOKENS = 1_000
CARD = {"method": "card", "card_number": "4242424242424242", "card_expiry": "12/40", "card_cvc": "123"}


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] * 1000


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of the server process (all its threads) so far.
    Put beside a phase's request count it gives CPU per request, the cost
    ratio that bounds the throughput ratio when the server is CPU-bound."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_ms_per_request(pid: int, phase) -> tuple[int, list[float], list[str], float]:
    """Run `phase()` -> (n, latencies, errors) and add the server's CPU ms per request."""
    before = server_cpu_seconds(pid)
    n, lat, err = phase()
    return n, lat, err, (server_cpu_seconds(pid) - before) * 1000 / max(n, 1)


def run_phase(seconds: float, clients: int, work) -> tuple[int, list[float], list[str]]:
    """Run `work(session, rng) -> None` in a loop on `clients` threads."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    stop = time.monotonic() + seconds
    barrier = threading.Barrier(clients)

    def client(i: int):
        rng = random.Random(i * 7919)
        with requests.Session() as s:
            barrier.wait()
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                try:
                    work(s, rng)
                except Exception as e:  # counted and reported; the checks decide
                    errors.append(repr(e)[:200])
                latencies[i].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [x for lat in latencies for x in lat]
    return len(flat), flat, errors


def bench_backend(backend: str, seconds: float, clients: int, workers: int, transfer_share: float = 0.5) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-ledger-{backend}-"))
    srv, cleanup = start_server(backend, tmp, workers=workers)
    try:
        users: list[TestUser] = [srv.new_user(tokens=START_TOKENS) for _ in range(USERS)]
        expected = {u.username: START_TOKENS for u in users}
        lock = threading.Lock()
        replays = {"sent": 0, "same": 0}

        def trivial(s: requests.Session, rng: random.Random):
            u = rng.choice(users)
            r = s.get(srv.base_url + "/v1/sessions/current", headers=u.headers, timeout=60)
            if r.status_code != 200:
                raise RuntimeError(f"GET {r.status_code}")

        def move(s: requests.Session, rng: random.Random):
            u = rng.choice(users)
            key = str(uuid.uuid4())
            headers = {**u.headers, "Idempotency-Key": key}
            if rng.random() < transfer_share:
                v = rng.choice([x for x in users if x is not u])
                n = rng.randint(1, 40)
                body = {"to_username": v.username, "to_full_name": v.full_name, "tokens": n, "pin": u.pin}
                path, delta = "/v1/transfers", ((u.username, -n), (v.username, n))
            else:
                n = rng.randint(1, 40)
                body = {**CARD, "tokens": n}
                path, delta = "/v1/token-purchases", ((u.username, n),)
            r = s.post(srv.base_url + path, json=body, headers=headers, timeout=60)
            if r.status_code == 201:
                with lock:
                    for name, d in delta:
                        expected[name] += d
            elif r.status_code != 402:
                raise RuntimeError(f"{path} {r.status_code} {r.text[:100]}")
            if rng.random() < 0.1:  # a client retry: same key, same body
                again = s.post(srv.base_url + path, json=body, headers=headers, timeout=60)
                with lock:
                    replays["sent"] += 1
                    replays["same"] += int(again.status_code == r.status_code and again.json() == r.json())

        # warm-up, then the floor and the token-moving load in the same run
        run_phase(1.0, clients, trivial)
        pid = srv.proc.pid
        g_n, g_lat, g_err, g_cpu = cpu_ms_per_request(pid, lambda: run_phase(seconds, clients, trivial))
        m_n, m_lat, m_err, m_cpu = cpu_ms_per_request(pid, lambda: run_phase(seconds, clients, move))

        check = srv.ledger_check()
        mismatched = [u.username for u in users if srv.me(u)["available_tokens"] != expected[u.username]]
        result = {
            "backend": backend, "workers": workers,
            "get_rps": g_n / seconds, "get_p50": pct(g_lat, 50), "get_p99": pct(g_lat, 99),
            "move_rps": m_n / seconds, "move_p50": pct(m_lat, 50), "move_p99": pct(m_lat, 99),
            "get_cpu_ms": g_cpu, "move_cpu_ms": m_cpu,
            "errors": g_err + m_err, "ledger_ok": check["ok"], "totals": check["totals"],
            "negative": check["negative_wallets"], "mismatched_users": mismatched,
            "replays": dict(replays),
        }
        result["ratio"] = result["move_rps"] / result["get_rps"] if result["get_rps"] else 0
        result["ok"] = (check["ok"] and not mismatched and not result["errors"]
                        and replays["same"] == replays["sent"])
        return result
    finally:
        cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--transfer-share", type=float, default=0.5,
                    help="share of transfers (PIN-checked) among the token-moving requests")
    a = ap.parse_args()
    ok = True
    for backend in a.backends.split(","):
        if backend == "postgres" and (reason := pg_unavailable_reason()):
            print(f"[{backend}] SKIPPED: {reason}")
            continue
        r = bench_backend(backend, a.seconds, a.clients, a.workers, a.transfer_share)
        print(f"[{backend}, {r['workers']} worker(s), {a.clients} clients, {a.seconds:.0f}s each]")
        print(f"  trivial authenticated GET : {r['get_rps']:8.1f} req/s  p50 {r['get_p50']:6.1f} ms  p99 {r['get_p99']:6.1f} ms")
        print(f"  transfers + card purchases: {r['move_rps']:8.1f} req/s  p50 {r['move_p50']:6.1f} ms  p99 {r['move_p99']:6.1f} ms")
        print(f"  ratio token-moving / GET  : {r['ratio']:.2f}x  (target >= 0.5x)")
        print(f"  server CPU per request    : GET {r['get_cpu_ms']:.2f} ms, token-moving {r['move_cpu_ms']:.2f} ms"
              f" (cost ratio {r['get_cpu_ms'] / r['move_cpu_ms']:.2f}x; the server process only)")
        print(f"  conservation: ledger ok={r['ledger_ok']} totals={r['totals']} negative={r['negative']} "
              f"users off={len(r['mismatched_users'])} replays same={r['replays']['same']}/{r['replays']['sent']} "
              f"errors={len(r['errors'])}")
        for e in r["errors"][:5]:
            print("   error:", e)
        ok = ok and r["ok"]
    print("CONSERVATION", "EXACT" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
