"""Network benchmark (issue 11): exchanges through the whole saga (vendor A,
the MSP, vendor B, back to A) against the same run's local transfers at A.

    .venv/bin/python bench/network.py [--seconds 10] [--clients 16] [--backends sqlite,postgres]

Three real processes (MSP, A, B), each on its own database, joined with
invitations. Phase 1: PIN-checked transfers between users of A (the floor).
Phase 2: each client quotes and confirms exchanges of Token-A into Token-B;
an exchange counts once A reports it completed (the time from confirm to
completed is measured by polling GET /v1/exchanges/{id}). Printed: rates,
p50/p99, the CPU of all three server processes per operation, and the cost
ratio exchange/transfer (target: at most 3x). After the run: the network
audit (`msp admin audit`) must hold, and every user's balance at A must be
its start less what its completed exchanges moved.

Profiling (issue 13): BENCH_PROFILE_DIR=DIR records the three servers with py-spy during the
exchange phase (exchange-a, -msp, -b) and the MSP and B during the open phase; BENCH_SQL_COUNT=1
counts their statements (bench/sql_count). bench/profiles.py reads both.

Open-token payments (issue 12), in the same run on fresh servers: users of A
buy universal open tokens at A by card, sign on at B with A's assertion and
rent a product at B paid wholly in open tokens (`payment: open`: B asks the
MSP to authorize, issues the license and its code, then confirms), against
local orders of the same product at A paid in Token-A (the floor). Printed:
rates, p50/p99, the CPU of all three servers per order and the ratio open/local
(target: at most 2x). After the run the audit must hold and every user's open
tokens must be what they bought less what their acknowledged orders paid.
"""
from __future__ import annotations

import argparse
import json
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

from bench.ledger import pct, run_phase, server_cpu_seconds  # noqa: E402
from tests.support.msp import start_msp  # noqa: E402
from tests.support.network import join  # noqa: E402
from tests.support.server import TestUser, pg_unavailable_reason, start_server  # noqa: E402
from tests.support.store import make_catalog, register_device  # noqa: E402

USERS = 16
START_TOKENS = 1_000_000
OPEN_PURCHASE_MAX = 1_000_000
OPEN_UNITS = 2_000_000           # universal open tokens each user buys ($20,000 at 1 cent)
CARD = {"method": "card", "card_number": "4242424242424242", "card_expiry": "12/40", "card_cvc": "123"}



def cpu(procs) -> float:
    return sum(server_cpu_seconds(p.proc.pid) for p in procs)


def bench_backend(backend: str, seconds: float, clients: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-network-{backend}-"))
    msp, stop_msp = start_msp(backend, tmp / "msp")
    a, stop_a = start_server(backend, tmp / "a")
    b, stop_b = start_server(backend, tmp / "b")
    procs = (msp, a, b)
    try:
        join(msp, a, "Mall A", 10, "Token-A")
        b_id = join(msp, b, "Mall B", 5, "Token-B")
        users: list[TestUser] = [a.new_user(tokens=START_TOKENS) for _ in range(USERS)]
        moved = {u.username: 0 for u in users}
        lock = threading.Lock()
        done_latency: list[float] = []
        exchanges: list[tuple[TestUser, str, int]] = []
        polls = [0]

        def transfer(s: requests.Session, rng: random.Random) -> None:
            u = rng.choice(users)
            v = rng.choice([x for x in users if x is not u])
            n = rng.randint(1, 40)
            r = s.post(a.base_url + "/v1/transfers", headers={**u.headers, "Idempotency-Key": uuid.uuid4().hex},
                       json={"to_username": v.username, "to_full_name": v.full_name, "tokens": n, "pin": u.pin},
                       timeout=60)
            if r.status_code != 201:
                raise RuntimeError(f"transfer {r.status_code} {r.text[:100]}")
            with lock:
                moved[u.username] -= n
                moved[v.username] += n

        def exchange(s: requests.Session, rng: random.Random) -> None:
            u = rng.choice(users)
            q = s.post(a.base_url + "/v1/exchange-quotes", headers=u.headers, timeout=60,
                       json={"to_member": b_id, "tokens": rng.randint(1, 40)})
            if q.status_code != 201:
                raise RuntimeError(f"quote {q.status_code} {q.text[:100]}")
            t0 = time.perf_counter()
            r = s.post(a.base_url + "/v1/exchanges", headers={**u.headers, "Idempotency-Key": uuid.uuid4().hex},
                       json={"quote_id": q.json()["quote_id"]}, timeout=60)
            if r.status_code != 201:
                raise RuntimeError(f"exchange {r.status_code} {r.text[:100]}")
            x = r.json()
            wait = 0.01
            while x["status"] == "pending":   # polls back off (each is a GET the servers' CPU pays for)
                time.sleep(wait)
                wait = min(wait * 2, 0.2)
                x = s.get(a.base_url + f"/v1/exchanges/{x['id']}", headers=u.headers, timeout=60).json()
                with lock:
                    polls[0] += 1
            if x["status"] != "completed":
                raise RuntimeError(f"exchange {x['status']}: {x.get('reason')}")
            with lock:
                done_latency.append(time.perf_counter() - t0)
                exchanges.append((u, x["id"], x["tokens_from"]))
                moved[u.username] -= x["tokens_from"]

        def poll_like(s: requests.Session, rng: random.Random) -> None:   # what one status poll costs
            u = rng.choice(users)
            if s.get(a.base_url + "/v1/exchanges", headers=u.headers, timeout=60).status_code != 200:
                raise RuntimeError("GET /v1/exchanges")

        run_phase(1.0, clients, transfer)                     # warm-up
        exchange(requests.Session(), random.Random(0))        # the first one reads the directory
        start = {k: v for k, v in moved.items()}
        g0 = cpu(procs)
        g_n, _g_lat, g_err = run_phase(min(seconds, 5), clients, poll_like)
        c0 = cpu(procs)
        t_n, t_lat, t_err = run_phase(seconds, clients, transfer)
        c1 = cpu(procs)
        per0 = [server_cpu_seconds(p.proc.pid) for p in procs]
        spies = _start_profilers({"exchange-msp": msp, "exchange-a": a, "exchange-b": b}, seconds)
        x_n, x_lat, x_err = run_phase(seconds, clients, exchange)
        c2 = cpu(procs)
        _stop_profilers(spies)
        per1 = [server_cpu_seconds(p.proc.pid) for p in procs]
        del start
        # quiescence, then the checks
        audit = _audit(msp)
        off = [u.username for u in users if a.me(u)["available_tokens"] != START_TOKENS + moved[u.username]]
        result = {
            "backend": backend, "transfer_rps": t_n / seconds, "transfer_p50": pct(t_lat, 50),
            "transfer_p99": pct(t_lat, 99), "exchange_rps": x_n / seconds, "exchange_p50": pct(x_lat, 50),
            "exchange_p99": pct(x_lat, 99), "confirm_to_completed_p50": pct(done_latency, 50),
            "confirm_to_completed_p99": pct(done_latency, 99),
            "transfer_cpu_ms": (c1 - c0) * 1000 / max(t_n, 1), "exchange_cpu_ms": (c2 - c1) * 1000 / max(x_n, 1),
            "errors": g_err + t_err + x_err, "audit": audit, "users_off": off,
            "poll_cpu_ms": (c0 - g0) * 1000 / max(g_n, 1),
            "exchange_cpu_ms_by_server": {name: (after - before) * 1000 / max(x_n, 1) for name, before, after
                                          in zip(("msp", "a", "b"), per0, per1, strict=True)},
            "polls_per_exchange": polls[0] / max(len(exchanges), 1),
        }
        result["exchange_cpu_ms_without_polls"] = (result["exchange_cpu_ms"]
                                                   - result["polls_per_exchange"] * result["poll_cpu_ms"])
        result["cost_ratio"] = result["exchange_cpu_ms"] / result["transfer_cpu_ms"] if t_n else float("nan")
        result["cost_ratio_without_polls"] = (result["exchange_cpu_ms_without_polls"] / result["transfer_cpu_ms"]
                                              if t_n else float("nan"))
        result["ok"] = audit is not None and audit.get("ok") is True and not off and not result["errors"]
        return result
    finally:
        stop_a()
        stop_b()
        stop_msp()


def _audit(msp) -> dict | None:
    """The network audit once it can run (the MSP refuses it while a movement is in flight), or None after 60 s."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        res = msp.admin("audit", check=False)
        if res.returncode == 0:
            return json.loads(res.stdout)
        time.sleep(1)
    return None


def _wait_outboxes_empty(*servers) -> None:
    """Until every vendor has sent all its messages to the MSP, so a phase's CPU includes the notices
    and confirmations it caused (they are sent after the answer) and none spills into the next phase."""
    from sqlalchemy import create_engine, text
    engines = [create_engine(srv.db_url) for srv in servers]
    try:
        deadline = time.monotonic() + 120
        def pending(engine) -> int:
            with engine.connect() as conn:
                return conn.execute(text("SELECT count(*) FROM mall_outbox WHERE status = 'pending'")).scalar_one()

        while any(pending(e) for e in engines):
            if time.monotonic() > deadline:
                raise RuntimeError("the outboxes did not empty within 120 s")
            time.sleep(0.2)
    finally:
        for e in engines:
            e.dispose()


def _assertion_session(home, user: TestUser, other, other_id: str) -> TestUser:
    r = home.api("POST", "/v1/mall-assertions", user, json={"audience": other_id})
    r.raise_for_status()
    s = other.api("POST", "/v1/sessions", json={"assertion": r.json()["assertion"]})
    s.raise_for_status()
    return TestUser(user.username, "", "", user.full_name, token=s.json()["token"])


def _open_units_left(msp, home_id: str, user_id: str) -> int:
    from server_stub.db import read_session
    from server_stub.mall import open_lots, records
    with read_session(msp.db_url) as db:
        cust = records.customer(db, home_id, user_id)
        return sum(b.tokens for b in open_lots.customer_lots(db, cust.id))


def _start_profilers(servers: dict, seconds: float) -> list:
    """py-spy on each server for one phase when BENCH_PROFILE_DIR is set (folded stacks, for flame graphs)."""
    out = os.environ.get("BENCH_PROFILE_DIR")
    if not out:
        return []
    import subprocess
    Path(out).mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():   # a tool for profiling, not a dependency of the project
        raise SystemExit(f"BENCH_PROFILE_DIR needs py-spy: {Path(sys.executable).with_name('pip')} install py-spy")
    return [subprocess.Popen([str(spy), "record", "--pid", str(srv.proc.pid), "--duration", str(int(seconds)),
                              "--format", "raw", "--rate", "200", "--nonblocking", "--gil",
                              "--output", str(Path(out) / f"{name}.folded")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, srv in servers.items()]


def _stop_profilers(spies: list) -> None:
    for p in spies:
        p.wait(timeout=120)


def _count_sql_in_servers() -> bool:
    """BENCH_SQL_COUNT=1: the servers started from now on count their statements (bench/sql_count)."""
    if not os.environ.get("BENCH_SQL_COUNT"):
        return False
    hook = str(Path(__file__).resolve().parent / "sql_count")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (hook, os.environ.get("PYTHONPATH"))))
    return True


def _sql_snapshot(procs, counting: bool) -> None:
    if counting:
        import signal
        for p in procs:
            os.kill(p.proc.pid, signal.SIGUSR1)


def bench_open(backend: str, seconds: float, clients: int) -> dict:
    """Orders at B paid in open tokens against local orders at A (the floor)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-open-{backend}-"))
    counting = _count_sql_in_servers()
    msp, stop_msp = start_msp(backend, tmp / "msp")
    a, stop_a = start_server(backend, tmp / "a")
    b, stop_b = start_server(backend, tmp / "b")
    procs = (msp, a, b)
    try:
        a_id = join(msp, a, "Mall A", 10, "Token-A")
        b_id = join(msp, b, "Mall B", 5, "Token-B")
        a.admin_cli("refresh-directory")
        cat_a, cat_b = make_catalog(a), make_catalog(b)
        offer_a, offer_b = cat_a.offers[("uses", "rent_uses")], cat_b.offers[("uses", "rent_uses")]
        users = [a.new_user(tokens=START_TOKENS) for _ in range(USERS)]
        shoppers = []
        for u in users:
            for _ in range(OPEN_UNITS // OPEN_PURCHASE_MAX):       # the API sells at most 1,000,000 at a time
                r = a.api("POST", "/v1/open-token-purchases", u, headers={"Idempotency-Key": uuid.uuid4().hex},
                          json={"kind": "universal", "tokens": OPEN_PURCHASE_MAX, "pin": u.pin, **CARD})
                if r.status_code not in (200, 201, 202) or r.json()["status"] not in ("issued", "pending"):
                    raise RuntimeError(f"open-token purchase {r.status_code} {r.text[:200]}")
            user_id = str(a.me(u)["id"])
            at_b = _assertion_session(a, u, b, b_id)
            shoppers.append((u, user_id, register_device(a, u).device_id, at_b, register_device(b, at_b).device_id))
        deadline = time.monotonic() + 60
        while any(_open_units_left(msp, a_id, uid) != OPEN_UNITS for _, uid, *_ in shoppers):
            if time.monotonic() > deadline:
                raise RuntimeError("the open-token purchases were not issued within 60 s")
            time.sleep(0.5)
        lock = threading.Lock()
        paid = {uid: 0 for _, uid, *_ in shoppers}
        statuses: dict[int, int] = {}

        def local_order(s: requests.Session, rng: random.Random) -> None:
            u, _uid, dev_a, _at_b, _dev_b = rng.choice(shoppers)
            r = s.post(a.base_url + "/v1/orders", headers={**u.headers, "Idempotency-Key": uuid.uuid4().hex},
                       json={"items": [{"offer_id": offer_a, "quantity": 10}], "device_id": dev_a}, timeout=60)
            if r.status_code != 201:
                raise RuntimeError(f"local order {r.status_code} {r.text[:100]}")

        def open_order(s: requests.Session, rng: random.Random) -> None:
            _u, uid, _dev_a, at_b, dev_b = rng.choice(shoppers)
            r = s.post(b.base_url + "/v1/orders", headers={**at_b.headers, "Idempotency-Key": uuid.uuid4().hex},
                       json={"items": [{"offer_id": offer_b, "quantity": 10}], "device_id": dev_b,
                             "payment": "open"}, timeout=60)
            with lock:
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code != 201:
                raise RuntimeError(f"open order {r.status_code} {r.text[:100]}")
            units = sum(p["tokens"] for p in r.json()["paid"] if p["kind"] != "closed")
            with lock:
                paid[uid] += units

        run_phase(1.0, clients, local_order)                   # warm-up of both paths
        run_phase(1.0, clients, open_order)
        _wait_outboxes_empty(a, b)
        base = {uid: _open_units_left(msp, a_id, uid) for _, uid, *_ in shoppers}
        for k in paid:
            paid[k] = 0
        c0 = cpu(procs)
        per_l0 = [server_cpu_seconds(p.proc.pid) for p in procs]
        l_n, l_lat, l_err = run_phase(seconds, clients, local_order)
        _wait_outboxes_empty(a, b)
        c1 = cpu(procs)
        per0 = [server_cpu_seconds(p.proc.pid) for p in procs]
        _sql_snapshot(procs, counting)
        spies = _start_profilers({"msp": msp, "b": b}, seconds)
        o_n, o_lat, o_err = run_phase(seconds, clients, open_order)
        _stop_profilers(spies)
        _wait_outboxes_empty(a, b)
        _sql_snapshot(procs, counting)
        if counting:
            print(f"  [{backend}] statements of the open phase ({o_n} orders): bench/profiles.py sql "
                  + " ".join(f"{name}: /tmp/sqlcount-{p.proc.pid}-1.json /tmp/sqlcount-{p.proc.pid}-2.json"
                             for name, p in zip(("msp", "a", "b"), procs, strict=True)))
        c2 = cpu(procs)
        per1 = [server_cpu_seconds(p.proc.pid) for p in procs]
        audit = _audit(msp)
        off = [uid for _, uid, *_ in shoppers if _open_units_left(msp, a_id, uid) != base[uid] - paid[uid]]
        result = {
            "backend": backend, "local_rps": l_n / seconds, "local_p50": pct(l_lat, 50), "local_p99": pct(l_lat, 99),
            "open_rps": o_n / seconds, "open_p50": pct(o_lat, 50), "open_p99": pct(o_lat, 99),
            "local_cpu_ms": (c1 - c0) * 1000 / max(l_n, 1), "open_cpu_ms": (c2 - c1) * 1000 / max(o_n, 1),
            "open_cpu_ms_by_server": {name: (after - before) * 1000 / max(o_n, 1) for name, before, after
                                      in zip(("msp", "a", "b"), per0, per1, strict=True)},
            "local_cpu_ms_by_server": {name: (after - before) * 1000 / max(l_n, 1) for name, before, after
                                       in zip(("msp", "a", "b"), per_l0, per0, strict=True)},
            "errors": l_err + o_err, "statuses": statuses, "audit": audit, "users_off": off,
        }
        result["cost_ratio"] = result["open_cpu_ms"] / result["local_cpu_ms"] if l_n else float("nan")
        result["latency_ratio"] = result["open_p50"] / result["local_p50"] if l_n else float("nan")
        result["ok"] = audit is not None and audit.get("ok") is True and not off and not result["errors"]
        return result
    finally:
        stop_a()
        stop_b()
        stop_msp()


def print_open(r: dict) -> None:
    print(f"  local orders at A (Token-A): {r['local_rps']:8.1f} /s  p50 {r['local_p50']:7.1f} ms  "
          f"p99 {r['local_p99']:7.1f} ms")
    print(f"  orders at B in open tokens : {r['open_rps']:8.1f} /s  p50 {r['open_p50']:7.1f} ms  "
          f"p99 {r['open_p99']:7.1f} ms (B -> MSP authorize, license + code, confirm)")
    by, lby = r["open_cpu_ms_by_server"], r["local_cpu_ms_by_server"]
    print(f"  CPU of the 3 servers / order: local {r['local_cpu_ms']:.2f} ms (A {lby['a']:.1f}, MSP {lby['msp']:.1f}), "
          f"open {r['open_cpu_ms']:.2f} ms (B {by['b']:.1f}, MSP {by['msp']:.1f}, A {by['a']:.1f}) -> cost ratio {r['cost_ratio']:.2f}x, "
          f"latency ratio (p50) {r['latency_ratio']:.2f}x (target <= 2x)")
    print(f"  audit: {r['audit']}  users off: {len(r['users_off'])}  errors: {len(r['errors'])} {r['errors'][:3]} "
          f"statuses {r['statuses']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--only", choices=("exchanges", "open"), default=None, help="run one of the two parts")
    a = ap.parse_args()
    os.environ.setdefault("TOKENRENT_RATE_LIMITS_ENABLED", "false")
    ok = True
    for backend in a.backends.split(","):
        if backend == "postgres" and (reason := pg_unavailable_reason()):
            print(f"[{backend}] skipped: {reason}")
            continue
        if a.only != "exchanges":
            o = bench_open(backend, a.seconds, a.clients)
            ok = ok and o["ok"]
            print(f"[{backend}] open-token payments, {a.clients} clients, {a.seconds:.0f} s per phase")
            print_open(o)
        if a.only == "open":
            continue
        r = bench_backend(backend, a.seconds, a.clients)
        ok = ok and r["ok"]
        print(f"[{backend}] {a.clients} clients, {a.seconds:.0f} s per phase")
        print(f"  local transfers at A      : {r['transfer_rps']:8.1f} /s  p50 {r['transfer_p50']:7.1f} ms  "
              f"p99 {r['transfer_p99']:7.1f} ms")
        print(f"  exchanges A -> MSP -> B   : {r['exchange_rps']:8.1f} /s  p50 {r['exchange_p50']:7.1f} ms  "
              f"p99 {r['exchange_p99']:7.1f} ms (quote + confirm + until completed)")
        print(f"  confirm -> completed      : p50 {r['confirm_to_completed_p50']:.1f} ms, "
              f"p99 {r['confirm_to_completed_p99']:.1f} ms")
        print(f"  CPU of the 3 servers / op : transfer {r['transfer_cpu_ms']:.2f} ms, exchange "
              f"{r['exchange_cpu_ms']:.2f} ms -> cost ratio {r['cost_ratio']:.2f}x (target <= 3x; the exchange "
              f"includes its quote and {r['polls_per_exchange']:.1f} status polls)")
        print(f"  without the status polls : exchange {r['exchange_cpu_ms_without_polls']:.2f} ms -> "
              f"{r['cost_ratio_without_polls']:.2f}x (a poll costs {r['poll_cpu_ms']:.2f} ms)")
        by = r["exchange_cpu_ms_by_server"]
        print(f"  exchange CPU by server    : A {by['a']:.1f} ms (its quote, confirm and polls), "
              f"MSP {by['msp']:.1f} ms, B {by['b']:.1f} ms")
        print(f"  audit: {r['audit']}  users off: {len(r['users_off'])}  errors: {len(r['errors'])} "
              f"{r['errors'][:3]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
