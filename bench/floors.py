"""The SQL floor of the money path (issue 13): PIN-checked transfers over HTTP against the same
work as one SQL transaction, measured side by side in one run on the same PostgreSQL database.

    .venv/bin/python bench/floors.py [--seconds 10] [--clients 16] [--backends sqlite,postgres] [-v]

A real server on a fresh PostgreSQL database, 32 funded users. Phase 1, over HTTP: PIN-checked
transfers (`POST /v1/transfers`, 16 client threads, a fresh Idempotency-Key each). Phase 2, the
floor: `pgbench` (16 clients, the same database, the server idle) running what a transfer must do
in SQL, as one transaction: the session lookup, both users locked FOR UPDATE in id order (first:
the idempotency row's foreign key takes a share lock on the payer, so inserting it before would
deadlock two opposite transfers), the idempotency record inserted, the two balance updates, the
transfer row, the stored answer.
Each pgbench script is one (payer, payee) pair with its real ids, so the floor pays no lookup of
its own. The card purchase has its row too: `POST /v1/token-purchases` by card over
HTTP against its statements in one transaction (session, user locked, idempotency read, token
policy, the wallet, the purchase row written and completed, the wallet credited, the token and
cent transfers, the stored answer). On SQLite the floor is the same statements
from 16 threads of a bare `sqlite3` program with the server's pragmas and its writer lock
(BEGIN IMMEDIATE stands for the FOR UPDATE, as in the server). Printed: both rates and the
ratio HTTP / floor (issue 13's target: at least 0.3x).
The floor leaves the books as they should be (each transfer moves 1 token between two wallets
and writes its transfer row); the server's ledger check must still hold afterwards.
"""
from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ledger import CARD, pct, run_phase  # noqa: E402
from server_stub.core.security import token_digest  # noqa: E402
from tests.support.server import pg_unavailable_reason, start_server  # noqa: E402

USERS = 32
PAIRS = 64
START_TOKENS = 1_000_000
SQLITE_FLOOR = "16 threads of sqlite3"

TRANSFER_SQL = """\\set r random(1, 1000000000000)
BEGIN;
SELECT s.user_id, s.expires_at, s.revoked_at, u.status, u.pin_hash FROM user_sessions s
  JOIN users u ON u.id = s.user_id WHERE s.token_digest = '{digest}';
SELECT id FROM users WHERE id IN ({low}, {high}) ORDER BY id FOR UPDATE;
INSERT INTO idempotency_records (user_id, key, fingerprint, status_code, response_json, created_at)
  VALUES ({payer}, 'floor-' || :client_id || '-' || :r, '{fingerprint}', 0, '', now());
UPDATE ledger_accounts SET balance = balance - 1 WHERE id = {payer_account} RETURNING balance;
UPDATE ledger_accounts SET balance = balance + 1 WHERE id = {payee_account} RETURNING balance;
INSERT INTO ledger_transfers (from_account_id, to_account_id, amount, currency, kind, memo, created_at)
  VALUES ({payer_account}, {payee_account}, 1, 'token', 'transfer', 'floor', now()) RETURNING id;
UPDATE idempotency_records SET status_code = 201, response_json = '{answer}'
  WHERE user_id = {payer} AND key = 'floor-' || :client_id || '-' || :r;
COMMIT;
"""


PURCHASE_SQL = """\\set r random(1, 1000000000000)
BEGIN;
SELECT s.user_id, s.expires_at, s.revoked_at, u.status FROM user_sessions s
  JOIN users u ON u.id = s.user_id WHERE s.token_digest = '{digest}';
SELECT id FROM users WHERE id = {user} FOR UPDATE;
SELECT fingerprint, status_code, response_json FROM idempotency_records
  WHERE user_id = {user} AND key = 'floor-' || :client_id || '-' || :r;
SELECT token_price_cents, min_tokens FROM token_policy WHERE id = 1;
SELECT id, balance FROM ledger_accounts WHERE id = {wallet};
INSERT INTO token_purchases (user_id, tokens, method, status, gross_cents, discount_bp, amount_cents, card_brand,
  card_last4, created_at) VALUES ({user}, 5, 'card', 'pending', 5, 0, 5, 'visa', '4242', now()) RETURNING id AS pid \\gset
UPDATE token_purchases SET status = 'completed', processor_ref = 'floor', credited_at = now(), settled_at = now()
  WHERE id = :pid;
UPDATE ledger_accounts SET balance = balance + 5 WHERE id = {wallet} RETURNING balance;
INSERT INTO ledger_transfers (from_account_id, to_account_id, amount, currency, kind, memo, purchase_id, created_at)
  VALUES ({issuance}, {wallet}, 5, 'token', 'purchase', 'floor', :pid, now()) RETURNING id;
INSERT INTO ledger_transfers (from_account_id, to_account_id, amount, currency, kind, memo, purchase_id, created_at)
  VALUES ({sales}, {cash}, 5, 'cent', 'purchase', 'floor', :pid, now()) RETURNING id;
INSERT INTO idempotency_records (user_id, key, fingerprint, status_code, response_json, created_at)
  VALUES ({user}, 'floor-' || :client_id || '-' || :r, '{fingerprint}', 201, '{answer}', now());
COMMIT;
"""


def _vendor_accounts(db_url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return {code: int(i) for code, i in conn.execute(text(
                "SELECT code, id FROM ledger_accounts WHERE code IN ('vendor:issuance', 'vendor:sales', 'vendor:cash')"))}
    finally:
        engine.dispose()


def _row(what: str, floor: str, http_rps: float, latencies: list[float], errors: list[str],
         floor_run: tuple[float, int], check: dict) -> dict:
    """One printed row: the HTTP phase, its floor (transactions/s, failures) and the ledger check after both."""
    floor_tps, floor_failed = floor_run
    return {"what": what, "floor": floor, "http_rps": http_rps, "http_p50": pct(latencies, 50),
            "http_p99": pct(latencies, 99), "floor_tps": floor_tps, "floor_failed": floor_failed,
            "ratio": http_rps / floor_tps, "errors": errors, "ledger_ok": check["ok"]}


def _pgbench(scripts: list[str], pg_url: str, seconds: float, clients: int, verbose: bool) -> tuple[float, int]:
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        raise SystemExit("pgbench is not installed (Debian: postgresql-client)")
    run = subprocess.run([pgbench, "-n", "-c", str(clients), "-j", "2", "-T", str(int(seconds)), *scripts, pg_url],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"pgbench failed: {run.stderr[-2000:]}")
    if verbose:
        print(run.stdout[-3000:], run.stderr[-3000:])
    tps = float([ln for ln in run.stdout.splitlines() if ln.startswith("tps =")][-1].split()[2])
    failed = [ln for ln in run.stdout.splitlines() if ln.startswith("number of failed transactions")]
    return tps, int(failed[0].split(":")[1].split()[0]) if failed else 0


def bench_purchases(backend: str, seconds: float, clients: int, verbose: bool = False) -> dict:
    """Card purchases over HTTP against their SQL floor (pgbench, or threads of sqlite3)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-floors-purchases-{backend}-"))
    srv, cleanup = start_server(backend, tmp)
    try:
        users = [srv.new_user(tokens=1) for _ in range(USERS)]

        def purchase(s: requests.Session, rng: random.Random) -> None:
            u = rng.choice(users)
            r = s.post(srv.base_url + "/v1/token-purchases", json={**CARD, "tokens": 5}, timeout=60,
                       headers={**u.headers, "Idempotency-Key": str(uuid.uuid4())})
            if r.status_code != 201:
                raise RuntimeError(f"purchase {r.status_code} {r.text[:100]}")

        run_phase(1.0, clients, purchase)
        h_n, h_lat, h_err = run_phase(seconds, clients, purchase)
        ids = [int(srv.me(u)["id"]) for u in users]
        wallets = _wallet_accounts(srv.db_url, ids)
        vendor = _vendor_accounts(srv.db_url)
        if backend == "sqlite":
            each = [{"digest": token_digest(u.token), "payer": ids[i], "payer_account": wallets[ids[i]],
                     "issuance": vendor["vendor:issuance"], "sales": vendor["vendor:sales"],
                     "cash": vendor["vendor:cash"]} for i, u in enumerate(users)]
            return _row("card purchases", SQLITE_FLOOR, h_n / seconds, h_lat, h_err,
                        _sqlite_floor(srv.db_url.removeprefix("sqlite:///"), each, seconds, clients, SQLITE_PURCHASE),
                        srv.ledger_check())
        scripts = []
        for i, u in enumerate(users):
            path = tmp / f"purchase-{i}.sql"
            path.write_text(PURCHASE_SQL.format(
                digest=token_digest(u.token), user=ids[i], wallet=wallets[ids[i]], issuance=vendor["vendor:issuance"],
                sales=vendor["vendor:sales"], cash=vendor["vendor:cash"], fingerprint="0" * 64,
                answer='{"id": 1, "tokens": 5, "status": "completed"}'))
            scripts += ["-f", str(path)]
        return _row("card purchases", "pgbench", h_n / seconds, h_lat, h_err,
                    _pgbench(scripts, _pg_url(srv.db_url), seconds, clients, verbose), srv.ledger_check())
    finally:
        cleanup()


def _pg_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://")


def _wallet_accounts(db_url: str, user_ids: list[int]) -> dict[int, int]:
    """Each user's wallet account: the one holding its tokens (a grant's lot)."""
    from sqlalchemy import bindparam, create_engine, text
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT owner_user_id, id FROM ledger_accounts WHERE owner_user_id IN :ids "
                                     "AND balance > 0 ORDER BY owner_user_id, balance DESC")
                                .bindparams(bindparam("ids", expanding=True)), {"ids": user_ids}).all()
    finally:
        engine.dispose()
    out: dict[int, int] = {}
    for owner, account in rows:
        out.setdefault(owner, account)
    return out


SQLITE_TRANSFER = (   # the same statements; SQLite's BEGIN IMMEDIATE stands for the FOR UPDATE (as in the server)
    ("SELECT s.user_id, s.expires_at, s.revoked_at, u.status, u.pin_hash FROM user_sessions s "
     "JOIN users u ON u.id = s.user_id WHERE s.token_digest = ?", ("digest",)),
    ("INSERT INTO idempotency_records (user_id, key, fingerprint, status_code, response_json, created_at) "
     "VALUES (?, ?, ?, 0, '', CURRENT_TIMESTAMP)", ("payer", "key", "fingerprint")),
    ("UPDATE ledger_accounts SET balance = balance - 1 WHERE id = ? RETURNING balance", ("payer_account",)),
    ("UPDATE ledger_accounts SET balance = balance + 1 WHERE id = ? RETURNING balance", ("payee_account",)),
    ("INSERT INTO ledger_transfers (from_account_id, to_account_id, amount, currency, kind, memo, created_at) "
     "VALUES (?, ?, 1, 'token', 'transfer', 'floor', CURRENT_TIMESTAMP) RETURNING id", ("payer_account", "payee_account")),
    ("UPDATE idempotency_records SET status_code = 201, response_json = ? WHERE user_id = ? AND key = ?",
     ("answer", "payer", "key")),
)


SQLITE_PURCHASE = (   # (statement, its parameters' names[, the name its first returned value gets])
    ("SELECT s.user_id, s.expires_at, s.revoked_at, u.status FROM user_sessions s "
     "JOIN users u ON u.id = s.user_id WHERE s.token_digest = ?", ("digest",)),
    ("SELECT fingerprint, status_code, response_json FROM idempotency_records WHERE user_id = ? AND key = ?",
     ("payer", "key")),
    ("SELECT token_price_cents, min_tokens FROM token_policy WHERE id = 1", ()),
    ("SELECT id, balance FROM ledger_accounts WHERE id = ?", ("payer_account",)),
    ("INSERT INTO token_purchases (user_id, tokens, method, status, gross_cents, discount_bp, amount_cents, card_brand, "
     "card_last4, created_at) VALUES (?, 5, 'card', 'pending', 5, 0, 5, 'visa', '4242', CURRENT_TIMESTAMP) RETURNING id",
     ("payer",), "pid"),
    ("UPDATE token_purchases SET status = 'completed', processor_ref = 'floor', credited_at = CURRENT_TIMESTAMP, "
     "settled_at = CURRENT_TIMESTAMP WHERE id = ?", ("pid",)),
    ("UPDATE ledger_accounts SET balance = balance + 5 WHERE id = ? RETURNING balance", ("payer_account",)),
    ("INSERT INTO ledger_transfers (from_account_id, to_account_id, amount, currency, kind, memo, purchase_id, created_at) "
     "VALUES (?, ?, 5, 'token', 'purchase', 'floor', ?, CURRENT_TIMESTAMP) RETURNING id", ("issuance", "payer_account", "pid")),
    ("INSERT INTO ledger_transfers (from_account_id, to_account_id, amount, currency, kind, memo, purchase_id, created_at) "
     "VALUES (?, ?, 5, 'cent', 'purchase', 'floor', ?, CURRENT_TIMESTAMP) RETURNING id", ("sales", "cash", "pid")),
    ("INSERT INTO idempotency_records (user_id, key, fingerprint, status_code, response_json, created_at) "
     "VALUES (?, ?, ?, 201, ?, CURRENT_TIMESTAMP)", ("payer", "key", "fingerprint", "answer")),
)


def _sqlite_floor(path: str, pairs: list[dict], seconds: float, clients: int,
                  statements: tuple = SQLITE_TRANSFER) -> tuple[float, int]:
    """16 threads of a bare sqlite3 program, the server's pragmas and its writer lock (a Python lock
    before BEGIN IMMEDIATE: SQLite's own busy handler sleeps). Returns (transactions/s, failures)."""
    import sqlite3
    import time

    writer = threading.Lock()
    done = [0]
    failed = [0]
    count_lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(i: int) -> None:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
            conn.execute(f"PRAGMA {pragma}")
        rng = random.Random(i)
        n = 0
        while time.monotonic() < stop_at:
            values = {**rng.choice(pairs), "key": f"floor-{i}-{n}", "fingerprint": "0" * 64,
                      "answer": '{"id": 1, "tokens": 1, "status": "completed"}'}
            try:
                with writer:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        for sql, names, *capture in statements:
                            rows = conn.execute(sql, [values[k] for k in names]).fetchall()
                            if capture:
                                values[capture[0]] = rows[0][0]
                        conn.execute("COMMIT")
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                n += 1
            except sqlite3.Error:
                with count_lock:
                    failed[0] += 1
        with count_lock:
            done[0] += n
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0] / seconds, failed[0]


def bench_transfers(backend: str, seconds: float, clients: int, verbose: bool = False) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-floors-{backend}-"))
    srv, cleanup = start_server(backend, tmp)
    try:
        users = [srv.new_user(tokens=START_TOKENS) for _ in range(USERS)]

        def transfer(s: requests.Session, rng: random.Random) -> None:
            u, v = rng.sample(users, 2)
            body = {"to_username": v.username, "to_full_name": v.full_name, "tokens": 1, "pin": u.pin}
            r = s.post(srv.base_url + "/v1/transfers", json=body, timeout=60,
                       headers={**u.headers, "Idempotency-Key": str(uuid.uuid4())})
            if r.status_code != 201:
                raise RuntimeError(f"transfer {r.status_code} {r.text[:100]}")

        run_phase(1.0, clients, transfer)   # warm-up
        h_n, h_lat, h_err = run_phase(seconds, clients, transfer)

        ids = [int(srv.me(u)["id"]) for u in users]
        accounts = _wallet_accounts(srv.db_url, ids)
        rng = random.Random(13)
        if backend == "sqlite":
            pairs = []
            for _ in range(PAIRS):
                a, b = rng.sample(range(USERS), 2)
                pairs.append({"digest": token_digest(users[a].token), "payer": ids[a],
                              "payer_account": accounts[ids[a]], "payee_account": accounts[ids[b]]})
            return _row("transfers", SQLITE_FLOOR, h_n / seconds, h_lat, h_err,
                        _sqlite_floor(srv.db_url.removeprefix("sqlite:///"), pairs, seconds, clients),
                        srv.ledger_check())
        pg_url = _pg_url(srv.db_url)
        scripts = []
        for i in range(PAIRS):
            a, b = rng.sample(range(USERS), 2)
            path = tmp / f"transfer-{i}.sql"
            path.write_text(TRANSFER_SQL.format(
                digest=token_digest(users[a].token), payer=ids[a], low=min(ids[a], ids[b]), high=max(ids[a], ids[b]),
                payer_account=accounts[ids[a]], payee_account=accounts[ids[b]], fingerprint="0" * 64,
                answer='{"id": 1, "tokens": 1, "status": "completed"}'))
            scripts += ["-f", str(path)]
        return _row("transfers", "pgbench", h_n / seconds, h_lat, h_err,
                    _pgbench(scripts, pg_url, seconds, clients, verbose), srv.ledger_check())
    finally:
        cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("-v", action="store_true", help="print pgbench's own report")
    a = ap.parse_args()
    ok = True
    for backend in a.backends.split(","):
        if backend == "postgres" and (reason := pg_unavailable_reason()):
            print(f"[postgres] skipped: {reason}")
            continue
        rows = [bench_transfers(backend, a.seconds, a.clients, a.v), bench_purchases(backend, a.seconds, a.clients, a.v)]
        for r in rows:
            print(f"[{backend}] {r['what']}, {a.clients} clients, {a.seconds:.0f} s per phase")
            print(f"  over HTTP           : {r['http_rps']:8.1f} /s  p50 {r['http_p50']:6.1f} ms  "
                  f"p99 {r['http_p99']:6.1f} ms")
            print(f"  the same SQL (floor): {r['floor_tps']:8.1f} /s ({r['floor']}, one transaction each; "
                  f"{r['floor_failed']} failed)")
            print(f"  ratio HTTP / floor  : {r['ratio']:.3f}x (issue 13's target: >= 0.3x)")
            print(f"  ledger check after both: {'ok' if r['ledger_ok'] else 'FAILED'}; "
                  f"errors {len(r['errors'])} {r['errors'][:3]}")
            ok = ok and r["ledger_ok"] and not r["errors"] and not r["floor_failed"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
