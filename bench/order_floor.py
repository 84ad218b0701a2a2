"""The SQL floor of a confirmed order (issue 13): what `POST /v1/orders` must do in SQL, as one
transaction per order, with the authorization code's crypto run in the same process as the SQL.

Used by bench/floors.py (the `orders` row). 16 Python threads, each with its own connection
(psycopg on PostgreSQL; `sqlite3` with the server's pragmas and its writer lock on SQLite), each
order being, in one transaction:

    the session lookup; the user locked (FOR UPDATE; on SQLite BEGIN IMMEDIATE stands for it);
    the idempotency record inserted; the hold (its row, the wallet debited, the hold account
    credited, the transfer row); the license updated (serial + 1, the new total: the licenses
    exist, each user's first order of each product made them, so every order extends one, as
    over HTTP); the authorization code signed and encrypted by the server's own functions
    (`server_stub.services.licenses.grant_for`, `license_agent.codes.issue_code`: X25519,
    AES-GCM, Ed25519) for the device's public key; the post of the hold to revenue (the hold
    account debited, the transfer row, the hold marked posted); the order row (its deliveries
    carry the code: the server keeps no other row for a code) and its item row; the stored answer
    (the receipt as JSON, code included).

The ids (user, wallet, hold account, license, device) are looked up once beforehand, so the floor
pays no lookup of its own (as the transfer and purchase floors). Vendor accounts keep no cached
balance (as in the server), so the books stay conserved: the ledger check holds afterwards.
"""
from __future__ import annotations

import base64
import json
import random
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from license_agent.codes import issue_code, kid_for
from server_stub.models.base import utcnow
from server_stub.services.licenses import grant_for
from server_stub.services.pricing import cash_cents
from server_stub.services.signing_keys import public_raw
from server_stub.vocabulary import HoldStatus, ItemAction, OrderStatus, TransferKind

FIELDS = ("uses", "processings")   # the license kinds the benchmark's orders extend


@dataclass
class Buyer:
    """One user as the floor sees it: ids looked up beforehand."""
    user_id: int
    digest: str
    wallet: int                 # the ledger account holding the user's tokens
    hold_account: int
    device_pk: int
    device_id: str
    device_public: bytes        # raw X25519 public key
    licenses: dict[str, int]    # license kind ("uses" | "processings") -> license id


@dataclass(frozen=True)
class Choice:
    """One kind of order line: an offer, its quantity, its price in tokens, the license kind it extends."""
    offer_id: int
    product_id: int
    product_name: str
    quantity: int
    tokens: int
    field: str


def _statements(pg: bool) -> dict[str, str]:
    s = {
        "session": "SELECT s.user_id, s.expires_at, s.revoked_at, u.status FROM user_sessions s "
                   "JOIN users u ON u.id = s.user_id WHERE s.token_digest = %s",
        "lock": "SELECT id FROM users WHERE id = %s FOR UPDATE",
        "idem": "INSERT INTO idempotency_records (user_id, key, fingerprint, status_code, response_json, created_at) "
                "VALUES (%s, %s, %s, 0, '', CURRENT_TIMESTAMP)",
        "hold": "INSERT INTO ledger_holds (user_id, amount, status, reference, created_at) "
                f"VALUES (%s, %s, '{HoldStatus.HELD}', 'order:floor', CURRENT_TIMESTAMP) RETURNING id",
        "debit": "UPDATE ledger_accounts SET balance = balance - %s WHERE id = %s RETURNING balance",
        "credit": "UPDATE ledger_accounts SET balance = balance + %s WHERE id = %s RETURNING balance",
        "transfer": "INSERT INTO ledger_transfers (from_account_id, to_account_id, amount, currency, kind, memo, "
                    "hold_id, from_wallet_after, to_wallet_after, created_at) "
                    "VALUES (%s, %s, %s, 'token', %s, 'floor', %s, %s, %s, CURRENT_TIMESTAMP) RETURNING id",
        "posted": f"UPDATE ledger_holds SET status = '{HoldStatus.POSTED}', settled_at = CURRENT_TIMESTAMP "
                  "WHERE id = %s",
        "order": "INSERT INTO store_orders (user_id, device_pk, device_id, status, payment, required_tokens, "
                 "available_tokens, balance_after, token_price_cents, cash_cents, hold_id, deliveries_json, created_at) "
                 f"VALUES (%s, %s, %s, '{OrderStatus.COMPLETED}', 'closed', %s, %s, %s, %s, %s, %s, %s, "
                 "CURRENT_TIMESTAMP) RETURNING id",
        "item": "INSERT INTO store_order_items (order_id, offer_id, product_id, product_name, offer_kind, action, "
                f"quantity, tokens, cash_cents, license_id) VALUES (%s, %s, %s, %s, %s, '{ItemAction.EXTEND}', "
                "%s, %s, %s, %s)",
        "answer": "UPDATE idempotency_records SET status_code = 201, response_json = %s WHERE user_id = %s AND key = %s",
    }
    for field in FIELDS:   # the field is one of two fixed names, never data
        s[f"license_{field}"] = (
            f"UPDATE store_licenses SET serial = serial + 1, {field} = {field} + %s, updated_at = CURRENT_TIMESTAMP "
            "WHERE id = %s RETURNING id, user_id, product_id, kind, serial, expires_at, uses, processings, "
            "low_threshold, product_name")
    if not pg:
        s = {k: v.replace("%s", "?") for k, v in s.items()}
        del s["lock"]        # BEGIN IMMEDIATE (and the writer lock) stands for it, as in the server
    return s


_LICENSE_COLUMNS = ("id", "user_id", "product_id", "kind", "serial", "expires_at", "uses", "processings",
                    "low_threshold", "product_name")


@dataclass
class _Run:
    """What every order of one floor run shares."""
    statements: dict[str, str]
    pg: bool
    revenue_account: int
    price_cents: int
    signing_key: Ed25519PrivateKey
    kid: str


def _one_order(cur, r: _Run, b: Buyer, c: Choice, offer_kind: str, key: str) -> float:
    """Every statement of one order on `cur`, inside the caller's transaction; the CPU seconds the
    code's crypto took."""
    s, price_cents = r.statements, r.price_cents

    def run(name: str, *params) -> None:
        cur.execute(s[name], params)

    run("session", b.digest)
    cur.fetchall()
    if r.pg:
        run("lock", b.user_id)
        cur.fetchall()
    run("idem", b.user_id, key, "0" * 64)
    run("hold", b.user_id, c.tokens)
    hold_id = cur.fetchone()[0]
    run("debit", c.tokens, b.wallet)
    wallet_after = cur.fetchone()[0]
    run("credit", c.tokens, b.hold_account)
    cur.fetchall()
    run("transfer", b.wallet, b.hold_account, c.tokens, TransferKind.HOLD, hold_id, wallet_after, wallet_after)
    cur.fetchall()
    run(f"license_{c.field}", c.quantity, b.licenses[c.field])
    lic = SimpleNamespace(**dict(zip(_LICENSE_COLUMNS, cur.fetchone(), strict=True)))
    now = utcnow().replace(microsecond=0)
    t0 = time.thread_time()   # this thread's CPU: waits for the GIL are not the crypto's
    grant = grant_for(lic, SimpleNamespace(device_id=b.device_id), now)
    code = issue_code(grant, r.signing_key, b.device_public)
    crypto = time.thread_time() - t0
    run("debit", c.tokens, b.hold_account)
    cur.fetchall()
    run("transfer", b.hold_account, r.revenue_account, c.tokens, TransferKind.SPEND, hold_id, wallet_after, None)
    cur.fetchall()
    run("posted", hold_id)
    cash = cash_cents(c.tokens, price_cents)
    delivery = {"product_id": c.product_id, "product_name": c.product_name, "license_id": lic.id,
                "serial": lic.serial, "kind": lic.kind, "device_id": b.device_id, "kid": r.kid,
                "authorization_code": code, "installed": True}
    run("order", b.user_id, b.device_pk, b.device_id, c.tokens, wallet_after + c.tokens, wallet_after,
        price_cents, cash, hold_id, json.dumps([delivery]))
    order_id = cur.fetchone()[0]
    run("item", order_id, c.offer_id, c.product_id, c.product_name, offer_kind, c.quantity, c.tokens, cash, lic.id)
    answer = {"id": order_id, "status": OrderStatus.COMPLETED, "created_at": now.isoformat(),
              "device_id": b.device_id, "required_tokens": c.tokens, "available_tokens": wallet_after + c.tokens,
              "remaining_tokens": wallet_after, "balance_after": wallet_after, "token_price_cents": price_cents,
              "cash_cents": cash,
              "items": [{"offer_id": c.offer_id, "product_id": c.product_id, "product_name": c.product_name,
                         "kind": offer_kind, "action": ItemAction.EXTEND, "quantity": c.quantity,
                         "tokens": c.tokens, "cash_cents": cash, "license_id": lic.id}],
              "deliveries": [delivery]}
    run("answer", json.dumps(answer), b.user_id, key)
    return crypto




@dataclass
class FloorRun:
    orders_per_s: float
    failed: int
    cpu_ms: float        # this process's CPU per order (the threads: driver, Python, crypto)
    crypto_ms: float     # of which the code's signing and encryption (thread CPU time)


def run_floor(backend: str, target: str, buyers: list[Buyer], choices: list[tuple[Choice, str]],
              revenue_account: int, price_cents: int, seconds: float, clients: int = 16) -> FloorRun:
    """Run orders for `seconds` on `clients` threads.
    `target`: a libpq URL (postgres) or the database file's path (sqlite); `choices`:
    (Choice, its offer kind)."""
    pg = backend == "postgres"
    signing_key = Ed25519PrivateKey.generate()   # a key of the server's kind: the cost does not depend on which
    r = _Run(_statements(pg), pg, revenue_account, price_cents, signing_key, kid_for(public_raw(signing_key)))
    writer = threading.Lock()          # SQLite: the server's writer lock
    done, failed, crypto_total = [0], [0], [0.0]
    count_lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def connect():
        if pg:
            import psycopg
            return psycopg.connect(target)
        import sqlite3
        conn = sqlite3.connect(target, timeout=30, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    def client(i: int) -> None:
        conn = connect()
        rng = random.Random(i)
        n = bad = 0
        crypto = 0.0
        barrier.wait()
        try:
            while time.monotonic() < stop_at[0]:
                b = rng.choice(buyers)
                c, offer_kind = rng.choice(choices)
                key = f"floor-order-{i}-{n}-{bad}"
                try:
                    if pg:
                        with conn.cursor() as cur:
                            crypto += _one_order(cur, r, b, c, offer_kind, key)
                        conn.commit()
                    else:
                        with writer:
                            cur = conn.cursor()
                            cur.execute("BEGIN IMMEDIATE")
                            try:
                                crypto += _one_order(cur, r, b, c, offer_kind, key)
                                cur.execute("COMMIT")
                            except BaseException:
                                cur.execute("ROLLBACK")
                                raise
                    n += 1
                except Exception as e:   # a failed transaction is counted (and must not happen)
                    bad += 1
                    if pg:
                        conn.rollback()
                    if bad <= 3:
                        print(f"  order floor: transaction failed: {type(e).__name__}: {str(e)[:200]}")
        finally:
            conn.close()
            with count_lock:
                done[0] += n
                crypto_total[0] += crypto
                failed[0] += bad

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.monotonic() + seconds   # after the connections are made, before anyone starts
    barrier.wait()
    started, cpu0 = time.monotonic(), time.process_time()
    for t in threads:
        t.join()
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu0
    n = max(done[0], 1)
    return FloorRun(done[0] / max(elapsed, seconds), failed[0], cpu * 1000 / n, crypto_total[0] * 1000 / n)


def load_buyers(db_url: str, digests: dict[int, str]) -> tuple[list[Buyer], int, int]:
    """The buyers (users given by id -> session token digest), the revenue account's id, the token price."""
    from sqlalchemy import bindparam, create_engine, text
    engine = create_engine(db_url)
    ids = list(digests)
    try:
        with engine.connect() as conn:
            accounts = conn.execute(text(
                "SELECT owner_user_id, id, purpose, balance FROM ledger_accounts WHERE owner_user_id IN :ids "
                "ORDER BY owner_user_id, balance DESC").bindparams(bindparam("ids", expanding=True)), {"ids": ids}).all()
            devices = {int(u): (int(pk), dev, key) for u, pk, dev, key in conn.execute(text(
                "SELECT user_id, id, device_id, public_key FROM store_devices WHERE user_id IN :ids ORDER BY id")
                .bindparams(bindparam("ids", expanding=True)), {"ids": ids})}
            lics = conn.execute(text(
                "SELECT user_id, kind, id FROM store_licenses WHERE user_id IN :ids AND cancelled_at IS NULL "
                "ORDER BY id").bindparams(bindparam("ids", expanding=True)), {"ids": ids}).all()
            revenue = int(conn.execute(text("SELECT id FROM ledger_accounts WHERE code = 'vendor:revenue'")).scalar_one())
            price = int(conn.execute(text("SELECT token_price_cents FROM token_policy WHERE id = 1")).scalar_one())
    finally:
        engine.dispose()
    wallet: dict[int, int] = {}
    hold: dict[int, int] = {}
    for owner, acct, purpose, _ in accounts:
        if purpose == "hold":
            hold.setdefault(int(owner), int(acct))
        elif purpose == "wallet":
            wallet.setdefault(int(owner), int(acct))
    by_user: dict[int, dict[str, int]] = {}
    for u, kind, lid in lics:
        by_user.setdefault(int(u), {}).setdefault(kind, int(lid))
    buyers = []
    for uid, digest in digests.items():
        pk, dev, key = devices[uid]
        buyers.append(Buyer(uid, digest, wallet[uid], hold[uid], pk, dev, base64.b64decode(key), by_user[uid]))
    return buyers, revenue, price
