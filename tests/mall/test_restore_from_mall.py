"""FIG 14 with real processes on SQLite and PostgreSQL: a vendor backs its
customer and token records up to the MSP (`admin backup-to-mall`, and every
`mall_backup_seconds`), loses its database, and `admin restore-from-mall`
rebuilds it from the MSP's copy: the ledger is whole and conserved, every
user's lots are as before, users sign in with their old password and PIN, and
the MSP's audit still holds. Refusals change nothing: a database that is not
empty, exchanges still in flight, a wrong MSP key, a tampered backup; one
member cannot read another's backup; an older snapshot never replaces a newer one."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server_stub.db import normalize_url
from server_stub.network.keys import load_or_create_network_key, public_key_text
from server_stub.services import mall_backup
from tests.support.network import join
from tests.support.server import PG_ADMIN_URL, ROOT, Server, TestUser, drop_pg_database

pytestmark = pytest.mark.timeout(900)

NO_BACKUPS = {"TOKENRENT_MALL_BACKUP_SECONDS": "0"}   # backups only when the test asks


def network_key_of(vendor: Server) -> Ed25519PrivateKey:
    return load_or_create_network_key(vendor.workdir / "data" / "network_key.pem")


def funded(vendor: Server, tokens: int, kind: str = "standard", expires_at: str | None = None) -> TestUser:
    u = vendor.register()
    grant(vendor, u, tokens, kind, expires_at)
    return u


def grant(vendor: Server, u: TestUser, tokens: int, kind: str = "standard", expires_at: str | None = None) -> None:
    extra = ("--expires-at", expires_at) if expires_at else ()
    vendor.admin_cli("grant", u.username, str(tokens), "--kind", kind, *extra)


def exchange(vendor: Server, user: TestUser, to_member: str, tokens: int) -> str:
    q = vendor.api("POST", "/v1/exchange-quotes", user, json={"to_member": to_member, "tokens": tokens})
    assert q.status_code == 201, q.text
    r = vendor.api("POST", "/v1/exchanges", user, json={"quote_id": q.json()["quote_id"]},
                   headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def wait_exchange(vendor: Server, user: TestUser, exchange_id: str, status: str = "completed",
                  timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        x = vendor.api("GET", f"/v1/exchanges/{exchange_id}", user).json()
        if x["status"] == status:
            return
        assert x["status"] == "pending" and time.monotonic() < deadline, x
        time.sleep(0.2)


def sign_on(home: Server, user: TestUser, other: Server, other_id: str) -> TestUser:
    r = home.api("POST", "/v1/mall-assertions", user, json={"audience": other_id})
    assert r.status_code == 201, r.text
    s = other.api("POST", "/v1/sessions", json={"assertion": r.json()["assertion"]})
    assert s.status_code == 200, s.text
    return TestUser(user.username, "", "", user.full_name, token=s.json()["token"])


def wallet(vendor: Server, user: TestUser) -> dict:
    """Balances per lot kind and expiry (GET /v1/me), without what is held."""
    tokens = dict(vendor.me(user)["tokens"])
    tokens.pop("held")
    return tokens


def open_order_hold(vendor: Server, username: str, tokens: int) -> None:
    """An order's hold left open (as an order in progress has it), by the ledger service on the vendor's database."""
    script = (
        "from sqlalchemy import select\n"
        "from server_stub.db import write_session\n"
        "from server_stub.models.user import User\n"
        "from server_stub.services import ledger\n"
        "with write_session() as db:\n"
        f"    u = db.scalar(select(User).where(User.username == {username!r}))\n"
        "    ledger.lock_wallets(db, u.id)\n"
        f"    ledger.hold(db, u, [ledger.SpendLine({tokens})], 'order:in-progress')\n")
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60,
                   env={**vendor.env, "TOKENRENT_DB_URL": vendor.db_url})


def msp_engine(msp) -> sa.Engine:
    return sa.create_engine(normalize_url(msp.db_url))


def movement_status(msp, operation_id: str) -> str:
    engine = msp_engine(msp)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SELECT status FROM movements WHERE operation_id = :o"),
                                    {"o": operation_id}).scalar_one())
    finally:
        engine.dispose()


def lose_database(vendor: Server) -> None:
    """The vendor's database is gone (the file, or the PostgreSQL database); its data dir stays."""
    if vendor.backend == "sqlite":
        path = Path(urlsplit(vendor.db_url).path)
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            p.unlink(missing_ok=True)
    else:
        import psycopg

        name = vendor.db_url.rsplit("/", 1)[1]
        drop_pg_database(name)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')


def restore(vendor: Server, msp, member_id: str, msp_key: str | None = None, check: bool = False):
    key = msp_key or msp.get("/v1/mall/directory").json()["msp"]["network_key"]
    return vendor.admin_cli("restore-from-mall", msp.base_url, "--member-id", member_id, "--msp-key", key,
                            check=check)


def count_users(vendor: Server) -> int:
    engine = sa.create_engine(normalize_url(vendor.db_url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT COUNT(*) FROM users")).scalar_one())
    finally:
        engine.dispose()


def test_a_vendor_that_lost_its_database_is_rebuilt_from_the_msps_backup(msp_factory, server_factory):
    msp = msp_factory()
    a, b = server_factory(env=NO_BACKUPS), server_factory(env=NO_BACKUPS)
    a_id = join(msp, a, "Mall A", 10, "Token-A")
    b_id = join(msp, b, "Mall B", 5, "Token-B")
    for vendor in (a, b):
        vendor.admin_cli("refresh-directory")
    later = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0).isoformat()

    # users with standard, free and expiring lots; an exchange done each way; an order's hold open
    u1 = funded(a, 300)
    grant(a, u1, 50, "incentive")
    grant(a, u1, 40, "standard", later)
    u2 = funded(a, 100)
    u3 = a.register()                                   # no tokens at all
    ub = funded(b, 200)
    wait_exchange(a, u1, exchange(a, u1, b_id, 100))    # 100 Token-A -> 200 Token-B
    wait_exchange(b, ub, exchange(b, ub, a_id, 40))     # 40 Token-B -> 20 Token-A into a linked account at A
    open_order_hold(a, u2.username, 25)
    # an exchange in flight when the backup is taken: B is down
    b.stop()
    x2 = exchange(a, u1, b_id, 30)
    out = json.loads(a.admin_cli("backup-to-mall").stdout)
    assert out["delivered"] is True and out["msp"]["stored"] is True, out
    assert out["users"] == 4 and out["holds"] >= 2 and out["bytes"] > 0   # u1-u3 and B's user's linked account
    listed = msp.admin_json("backups")
    assert [(r["member_id"], r["ledger_head"]) for r in listed] == [(a_id, out["ledger_head"])]

    # after the backup: X2 completes, another exchange out and one in, then one in flight again
    b.start()
    wait_exchange(a, u1, x2)
    wait_exchange(a, u1, exchange(a, u1, b_id, 20))
    wait_exchange(b, ub, exchange(b, ub, a_id, 60))
    b.stop()
    x4 = exchange(a, u1, b_id, 10)
    expected = {u.username: wallet(a, u) for u in (u1, u2, u3)}
    expected[u2.username]["standard"] += 25            # the order is not restored: its hold is released
    expected[u2.username]["transferable"] += 25
    a.stop()
    lose_database(a)

    # X4 is still in flight at the MSP: the restore waits, nothing changes
    refused = restore(a, msp, a_id)
    assert refused.returncode == 2 and "still in flight" in refused.stderr, refused.stderr
    assert count_users(a) == 0
    b.start()
    deadline = time.monotonic() + 120
    while movement_status(msp, x4) == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.3)

    # the network key file is gone too: the MSP would not know this store; refused
    key_file = a.workdir / "data" / "network_key.pem"
    key_file.rename(key_file.with_suffix(".away"))
    no_key = restore(a, msp, a_id)
    key_file.with_suffix(".away").rename(key_file)
    assert no_key.returncode == 2 and "network key file" in no_key.stderr and count_users(a) == 0, no_key.stderr
    # a wrong MSP key: the MSP's answers do not verify; refused, nothing changed
    wrong = restore(a, msp, a_id, msp_key=public_key_text(Ed25519PrivateKey.generate()))
    assert wrong.returncode == 2 and "--msp-key" in wrong.stderr and count_users(a) == 0, wrong.stderr
    # another member cannot read A's backup; B has none of its own
    b_key = network_key_of(b)
    assert msp.signed("GET", f"/v1/mall/backups/latest?member={a_id}", b_key, b_id).status_code == 403
    assert msp.signed("GET", "/v1/mall/backups/latest", b_key, b_id).status_code == 404
    # a backup changed at the MSP: its digest no longer matches; refused
    engine = msp_engine(msp)
    try:
        with engine.begin() as conn:
            body = conn.execute(sa.text("SELECT body FROM member_backups WHERE member_id = :m"),
                                {"m": a_id}).scalar_one()
            assert "$argon2" not in body      # the MSP's copy holds no password or PIN hash it could read
            forged = body.replace(f'"username":"{u3.username}"', '"username":"mallory"')
            assert forged != body
            conn.execute(sa.text("UPDATE member_backups SET body = :b WHERE member_id = :m"), {"b": forged, "m": a_id})
        tampered = restore(a, msp, a_id)
        assert tampered.returncode == 2 and "digest" in tampered.stderr and count_users(a) == 0, tampered.stderr
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE member_backups SET body = :b WHERE member_id = :m"), {"b": body, "m": a_id})
    finally:
        engine.dispose()

    done = restore(a, msp, a_id, check=True)
    report = json.loads(done.stdout)
    assert report["restored"]["users"] == 4 and report["restored"]["credentials"] == "restored"
    assert report["backup"]["ledger_head"] == out["ledger_head"] and report["verify_ledger"]["ok"] is True
    assert [h["tokens"] for h in report["holds_released"]] == [25]
    applied = {x["operation_id"] for x in report["applied_after_backup"]}
    assert x2 in applied and x4 in applied and len(applied) == 4, report["applied_after_backup"]
    assert any("Card numbers" in s for s in report["not_restored"])
    assert report["totals"]["token"]["users"] + report["totals"]["token"]["vendor"] == 0
    # a second restore finds the database not empty
    again = restore(a, msp, a_id)
    assert again.returncode == 2 and "not empty" in again.stderr

    a.start()
    assert json.loads(a.admin_cli("verify-ledger").stdout)["ok"] is True
    for u in (u1, u2, u3):
        a.sign_in(u)                                   # the old password
        assert wallet(a, u) == expected[u.username], u.username
        assert a.me(u)["tokens"]["held"] == 0
    # the old PIN: a transfer from u1 to u3
    t = a.api("POST", "/v1/transfers", u1, json={"to_username": u3.username, "to_full_name": u3.full_name,
                                                 "tokens": 5, "pin": u1.pin})
    assert t.status_code == 201, t.text
    assert a.me(u3)["available_tokens"] == 5
    # B's user still reaches its linked account at A, with both exchanges in
    assert a.me(sign_on(b, ub, a, a_id))["available_tokens"] == 20 + 30
    # the statement starts with the opening balances
    kinds = {e["kind"] for e in a.api("GET", "/v1/ledger", u1).json()["entries"]}
    assert "restore" in kinds
    # new rows follow the restored ones (PostgreSQL's sequences were moved)
    assert a.register().id > max(u.id for u in (u1, u2, u3))
    # the MSP's audit holds once the MSP's last message to A (X4's result) is delivered
    deadline = time.monotonic() + 400
    while (res := msp.admin("audit", check=False)).returncode != 0:
        assert time.monotonic() < deadline, res.stderr
        time.sleep(3)


def test_an_older_snapshot_never_replaces_a_newer_one_and_a_forged_or_huge_one_is_refused(msp, server_factory):
    a = server_factory(env=NO_BACKUPS)
    alone = a.admin_cli("backup-to-mall", check=False)     # not in a mall yet: nothing to back up to
    assert alone.returncode == 2 and "not joined a mall" in alone.stderr
    a_id = join(msp, a, "Mall A", 10, "Token-A")
    key = network_key_of(a)

    def snap(head: int, at: datetime) -> dict:
        return {"schema_version": 1, "member_id": a_id, "ledger_head": head, "taken_at": at.isoformat(),
                "users": [{"id": 7, "full_name": "Seven", "role": "user"}], "links": [], "exchanges": []}

    def send(s: dict, signer: Ed25519PrivateKey = key):
        body = mall_backup.signed_message(s, "0" * 64, signer)
        return msp.signed("POST", "/v1/mall/backups", key, a_id, body,
                          headers={"Idempotency-Key": mall_backup.message_id(s)})

    now = datetime.now(UTC)
    first = send(snap(10, now))
    assert first.status_code == 200 and first.json()["stored"] is True, first.text
    older = send(snap(5, now + timedelta(seconds=1)))
    assert older.status_code == 200 and (older.json()["stored"], older.json()["ledger_head"]) == (False, 10)
    same_head_earlier = send(snap(10, now - timedelta(seconds=1)))
    assert same_head_earlier.json()["stored"] is False
    newer = snap(10, now + timedelta(seconds=2))           # users change without ledger transfers
    newer["users"][0]["full_name"] = "Seven Jr"
    assert send(newer).json()["stored"] is True
    # the customer record of the member's own user is kept at the MSP
    engine = msp_engine(msp)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT full_name FROM customer_records WHERE home_member_id = :m "
                                        "AND home_user_id = '7'"), {"m": a_id}).scalar_one() == "Seven Jr"
    finally:
        engine.dispose()
    # signed by another key than the member's: refused (and stored as the final answer)
    forged = send(snap(99, now + timedelta(seconds=3)), Ed25519PrivateKey.generate())
    assert forged.status_code == 422 and "signature" in forged.json()["detail"]
    latest = msp.signed("GET", "/v1/mall/backups/latest", key, a_id).json()
    assert (latest["ledger_head"], latest["pending_movements"]) == (10, 0)
    # too large: 413 from the Content-Length alone, before any body is read
    host, port = urlsplit(msp.base_url).hostname, urlsplit(msp.base_url).port
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"POST /v1/mall/backups HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 60000000\r\n\r\n")
        head = s.recv(4096).decode("latin-1")
    assert head.startswith("HTTP/1.1 413"), head


def test_backups_are_taken_periodically_when_something_changed(msp, server_factory):
    a = server_factory(env={"TOKENRENT_MALL_BACKUP_SECONDS": "1"})
    a_id = join(msp, a, "Mall A", 10, "Token-A")

    def head() -> int | None:
        rows = [r for r in msp.admin_json("backups") if r["member_id"] == a_id]
        return rows[0]["ledger_head"] if rows else None

    def wait_head(pred, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while (h := head()) is None or not pred(h):
            assert time.monotonic() < deadline, h
            time.sleep(0.5)
        return h

    first = wait_head(lambda h: True)
    u = funded(a, 70)
    second = wait_head(lambda h: h > first)
    grant(a, u, 5)
    wait_head(lambda h: h > second)
    # nothing changed: no new backups pile up in the outbox; the delivered ones' bodies are dropped
    engine = sa.create_engine(normalize_url(a.db_url))
    try:
        with engine.connect() as conn:
            n = conn.execute(sa.text("SELECT COUNT(*) FROM mall_outbox WHERE kind = 'backup.snapshot'")).scalar_one()
            pruned = conn.execute(sa.text("SELECT COUNT(*) FROM mall_outbox WHERE kind = 'backup.snapshot' "
                                          "AND body = :pruned"), {"pruned": '{"pruned":true}'}).scalar_one()
            assert n >= 3 and pruned >= n - 2, (n, pruned)
        time.sleep(3)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM mall_outbox WHERE kind = 'backup.snapshot'")
                                ).scalar_one() == n
    finally:
        engine.dispose()


def test_credentials_are_sealed_to_the_vendors_own_network_key():
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    hashes = {"1": ["$argon2id$password", "$argon2id$pin"]}
    sealed = mall_backup.seal_credentials(key, "m-aaaaaaaaaa", hashes)
    assert "argon2" not in json.dumps(sealed) and sealed["alg"] == "AES-256-GCM/HKDF-SHA256"
    assert mall_backup.open_credentials(key, "m-aaaaaaaaaa", sealed) == hashes
    assert mall_backup.open_credentials(other, "m-aaaaaaaaaa", sealed) is None     # another key: lost
    assert mall_backup.open_credentials(key, "m-bbbbbbbbbb", sealed) is None       # bound to the member id
    assert mall_backup.seal_credentials(key, "m-aaaaaaaaaa", hashes) != sealed      # a fresh nonce each time


def _directory(me: str, other: str, msp_key: str) -> dict:
    def member(member_id: str, value: int) -> dict:
        return {"member_id": member_id, "name": member_id, "base_url": "http://127.0.0.1:9",
                "network_key": public_key_text(Ed25519PrivateKey.generate()),
                "token": {"name": "T", "value_cents": value}, "status": "active"}
    return {"version": 3, "msp": {"network_key": msp_key}, "members": [member(me, 10), member(other, 5)]}


def test_restore_ends_every_hold_and_refuses_what_does_not_add_up(backend, tmp_path):
    """In-process, on both databases: the restore's rules the network test does not reach. An
    exchange in flight at the snapshot that failed at the MSP, or that the MSP never heard of,
    gives the tokens back; one the MSP completed after the snapshot that the user can no longer
    pay is a warning; a lot expired since is expired on first use; a backup that does not sum to
    zero, or is not this member's, whole and signed, restores nothing; another network key
    cannot open the credentials, and the report says so."""
    from server_stub.db import read_session, write_session
    from server_stub.models.user import User
    from server_stub.services import accounts, ledger, mall, wallet
    from server_stub.services.errors import Conflict
    from tests.support.server import migrated_database

    me, other = "m-aaaaaaaaaa", "m-bbbbbbbbbb"
    msp_key = public_key_text(Ed25519PrivateKey.generate())
    key = Ed25519PrivateKey.generate()
    directory = _directory(me, other, msp_key)
    for sub in ("src", "dst", "data"):
        (tmp_path / sub).mkdir()
    with migrated_database(backend, tmp_path / "src", data_dir=str(tmp_path / "data")) as src, \
            migrated_database(backend, tmp_path / "dst", data_dir=str(tmp_path / "data")) as dst:
        with write_session(src) as db:
            mall.record_membership(db, member_id=me, msp_url="http://127.0.0.1:9", msp_key=msp_key,
                                   directory=directory)
            u = accounts.create_user(db, username="carol", password="old password 1", pin="2468",
                                     full_name="Carol", email="c@example.com")
        with write_session(src) as db:
            wallet.grant_tokens(db, "carol", 100)
            wallet.grant_tokens(db, "carol", 30, expires_at=datetime.now(UTC) + timedelta(seconds=3))
        pending = []
        for tokens in (20, 10):
            with write_session(src) as db:
                user = db.get(User, u.id)
                q = mall.quote_exchange(db, user, other, tokens)
                pending.append(mall.confirm_exchange(db, u.id, q.id)[0].id)
        with read_session(src) as db:
            snap, fingerprint = mall_backup.snapshot(db, me, key)
        message = mall_backup.signed_message(snap, fingerprint, key)
        after = str(uuid.uuid4())
        answer = {"member_id": me, "sha256": message["sha256"], "backup": message, "pending_movements": 0,
                  "movements_since": [
                      {"operation_id": pending[0], "from_member": me, "to_member": other, "status": "failed",
                       "tokens_from": 20, "tokens_to": 40, "value_cents": 200},
                      {"operation_id": after, "from_member": me, "to_member": other, "status": "completed",
                       "tokens_from": 5000, "tokens_to": 10000, "value_cents": 50000,
                       "customer": {"home_member": me, "home_user_id": str(u.id), "full_name": "Carol"}}]}

        def users() -> int:
            with read_session(dst) as db:
                return len(db.scalars(sa.select(User)).all())

        # not this member's, changed, or signed by another key: refused before anything is written
        with pytest.raises(Conflict, match="not m-bbbbbbbbbb's"):
            mall_backup.verify_backup(answer, other, key.public_key())
        changed = json.loads(json.dumps(answer))
        changed["backup"]["snapshot"]["users"][0]["full_name"] = "Mallory"
        with pytest.raises(Conflict, match="digest"):
            mall_backup.verify_backup(changed, me, key.public_key())
        with pytest.raises(Conflict, match="not signed"):
            mall_backup.verify_backup(answer, me, Ed25519PrivateKey.generate().public_key())
        # accounts that do not sum to zero: nothing restored
        unbalanced = json.loads(json.dumps(snap))
        next(a for a in unbalanced["accounts"] if a["owner_user_id"])["balance"] += 1
        with pytest.raises(Conflict, match="do not sum to zero"), write_session(dst) as db:
            mall_backup.restore(db, answer=answer, snap=unbalanced, directory=directory,
                                msp_url="http://127.0.0.1:9", msp_key=msp_key, key=key)
        assert users() == 0

        time.sleep(3)   # the 30 expiring tokens are past their expiry now
        lost_key = Ed25519PrivateKey.generate()
        with write_session(dst) as db:
            report = mall_backup.restore(db, answer=answer, snap=mall_backup.verify_backup(
                answer, me, key.public_key()), directory=directory, msp_url="http://127.0.0.1:9",
                msp_key=msp_key, key=lost_key)
        assert report["restored"]["credentials"] == "lost"
        assert any("new password and PIN" in s for s in report["not_restored"])
        assert [x["operation_id"] for x in report["applied_after_backup"]] == pending
        assert len(report["warnings"]) == 1 and after in report["warnings"][0]
        with write_session(dst) as db:
            carol = db.get(User, u.id)
            assert carol is not None and carol.password_hash.startswith("!")   # no password matches
            ledger.lock_wallets(db, u.id)                                      # first use: the lot expires
            assert ledger.available_tokens(db, carol) == 100                   # both exchanges' tokens back
            statuses = {x: db.get(mall_backup.Exchange, x).status for x in pending}
            assert statuses == {pending[0]: "failed", pending[1]: "failed"}
            assert ledger.verify_ledger(db).ok
