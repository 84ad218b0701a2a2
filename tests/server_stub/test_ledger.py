"""The ledger service on a real, migrated database (SQLite file and
PostgreSQL): spend order, restricted tokens, holds, negative draw, and
concurrent holds that must never overspend."""
import threading
from datetime import timedelta

import pytest

from server_stub.db import write_session, read_session
from server_stub.models.base import utcnow
from server_stub.models.user import User
from server_stub.services import accounts, ledger, wallet
from server_stub.services.errors import Conflict, InsufficientTokens
from server_stub.services.ledger import SpendLine


@pytest.fixture
def db_url(backend, tmp_path):
    from tests.support.server import migrated_database

    with migrated_database(backend, tmp_path, data_dir=str(tmp_path), argon2_memory_kib=8192,
                           argon2_time_cost=1) as url:
        yield url


def make_user(name, standard=0, incentive=0, restricted=0, expiring=()):
    with write_session() as db:
        u = accounts.create_user(db, username=name, password="password 123", pin="1234",
                                 full_name=name.title(), email=f"{name}@example.com")
        for kind, n in (("standard", standard), ("incentive", incentive), ("restricted", restricted)):
            if n:
                wallet.grant_tokens(db, name, n, kind)
        for kind, n, days in expiring:
            wallet.grant_tokens(db, name, n, kind, utcnow() + timedelta(days=days))
        return u.id



def lots(user_id):
    with read_session() as db:
        user = db.get(User, user_id)
        w = ledger.load_wallet(db, user)
        return {(a.token_kind, a.expires_at is not None): a.balance for a in w.lots}, w.held


def test_spend_order_restricted_for_sale_then_soonest_expiry(db_url):
    uid = make_user("alice", standard=100, incentive=20, restricted=30,
                    expiring=[("standard", 10, 1), ("incentive", 5, 10)])
    with write_session() as db:
        ledger.lock_wallets(db, uid)
        user = db.get(User, uid)
        plan = ledger.plan_spend(db, user, [SpendLine(25, on_sale=True), SpendLine(20)])
        taken = [(lot.token_kind, lot.expires_at is not None, n) for lot, n in plan.takes]
    # restricted pays the sale item (25 of 30); then the 1-day standard lot (10),
    # then the 10-day incentive lot (5), then never-expiring incentive (5 of 20)
    assert taken == [("restricted", False, 25), ("standard", True, 10), ("incentive", True, 5),
                     ("incentive", False, 5)]


def test_restricted_tokens_never_pay_for_regular_items(db_url):
    uid = make_user("bob", standard=10, restricted=100)
    with pytest.raises(InsufficientTokens) as e:
        with write_session() as db:
            ledger.lock_wallets(db, uid)
            ledger.hold(db, db.get(User, uid), [SpendLine(50, on_sale=False)], "order:x")
    assert e.value.required == 50 and e.value.available == 10
    assert lots(uid)[0][("restricted", False)] == 100     # nothing moved


def test_hold_post_and_void(db_url):
    uid = make_user("carol", standard=100, incentive=50)
    with write_session() as db:
        ledger.lock_wallets(db, uid)
        h1 = ledger.hold(db, db.get(User, uid), [SpendLine(120)], "order:1").id
    balances, held = lots(uid)
    assert held == 120 and sum(balances.values()) == 30
    with write_session() as db:
        ledger.void_hold(db, h1)
    balances, held = lots(uid)
    assert held == 0 and balances == {("standard", False): 100, ("incentive", False): 50}
    with pytest.raises(Conflict):
        with write_session() as db:
            ledger.post_hold(db, h1)
    with write_session() as db:
        ledger.lock_wallets(db, uid)
        h2 = ledger.hold(db, db.get(User, uid), [SpendLine(70)], "order:2").id
        ledger.post_hold(db, h2)
    balances, held = lots(uid)
    assert held == 0 and sum(balances.values()) == 80
    assert balances[("incentive", False)] == 0            # incentive spent before standard
    with read_session() as db:
        report = ledger.verify_ledger(db)
        assert report.ok, report
        lines = ledger.statement(db, uid)
    assert [x["kind"] for x in lines[:2]] == ["spend", "hold"]


def test_negative_draw_limit(db_url):
    uid = make_user("dave", standard=10)
    with write_session() as db:
        wallet.set_negative_limit(db, "dave", 25)
    with write_session() as db:
        ledger.lock_wallets(db, uid)
        ledger.spend(db, db.get(User, uid), [SpendLine(35)], "order:n")
    balances, _ = lots(uid)
    assert balances[("standard", False)] == -25
    with pytest.raises(InsufficientTokens):
        with write_session() as db:
            ledger.lock_wallets(db, uid)
            ledger.spend(db, db.get(User, uid), [SpendLine(1)], "order:m")
    with pytest.raises(Conflict):   # the limit cannot go below what is already drawn
        with write_session() as db:
            wallet.set_negative_limit(db, "dave", 24)
    with write_session() as db:
        # tokens bought while in debt pay the debt first: none of them is transferable
        ledger.lock_wallets(db, uid)
        ledger.credit_tokens(db, db.get(User, uid), 20, ledger.ISSUANCE, "purchase", "t",
                             expires_at=utcnow() + timedelta(days=9))
        assert ledger.load_wallet(db, db.get(User, uid)).transferable == 0
        with pytest.raises(InsufficientTokens):
            ledger.plan_transferable(db, db.get(User, uid), 1)
    with read_session() as db:
        assert ledger.verify_ledger(db).ok


def test_concurrent_holds_never_overspend(db_url):
    uid = make_user("erin", standard=100)
    results = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        for _ in range(5):
            try:
                with write_session() as db:
                    ledger.lock_wallets(db, uid)
                    ledger.spend(db, db.get(User, uid), [SpendLine(7)], "order:c")
                results.append("ok")
            except InsufficientTokens:
                results.append("short")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 14                       # 14 * 7 = 98 <= 100 < 15 * 7
    balances, held = lots(uid)
    assert balances[("standard", False)] == 2 and held == 0
    with read_session() as db:
        assert ledger.verify_ledger(db).ok


def test_secrets_are_argon2_and_pins_are_peppered(db_url, tmp_path):
    import stat

    from argon2 import PasswordHasher

    from server_stub.core.security import verify_pin

    make_user("frank")
    with read_session() as db:
        u = accounts.find_user(db, "frank")
    assert u.password_hash.startswith("$argon2id$") and u.pin_hash.startswith("$argon2id$")
    assert "password 123" not in u.password_hash and "1234" not in u.pin_hash
    assert PasswordHasher().verify(u.password_hash, "password 123")
    # the PIN hash is useless without the server's pepper file
    try:
        leaked_ok = PasswordHasher().verify(u.pin_hash, "1234")
    except Exception:
        leaked_ok = False
    assert not leaked_ok
    assert verify_pin(u.pin_hash, "1234") and not verify_pin(u.pin_hash, "4321")
    pepper = tmp_path / "pin_pepper.key"
    assert stat.S_IMODE(pepper.stat().st_mode) == 0o600 and len(pepper.read_bytes()) == 32


def test_a_verified_pin_is_remembered_only_for_its_hash(db_url):
    """The verified-PIN cache (core/security.py): a match is not put through argon2 again, a
    wrong PIN is never remembered, and a new PIN (a new hash) no longer accepts the old one."""
    from server_stub.core import security

    make_user("gina")
    with read_session() as db:
        old_hash = accounts.find_user(db, "gina").pin_hash
    assert not security.verify_pin(old_hash, "9999")
    assert security._pin_tag(old_hash, "9999") not in security._verified_pins
    assert security.verify_pin(old_hash, "1234")
    assert security._pin_tag(old_hash, "1234") in security._verified_pins
    assert security.verify_pin(old_hash, "1234")   # from the cache
    new_hash = security.hash_pin("5678")
    assert not security.verify_pin(new_hash, "1234") and security.verify_pin(new_hash, "5678")
    assert security.verify_pin(old_hash, "1234")   # the old hash still holds only its own PIN
    assert not security.verify_pin(old_hash, "5678")


def test_the_wallet_lock_takes_users_by_id_and_by_name_in_one_statement(db_url):
    from sqlalchemy import event

    from server_stub.db import get_engine

    alice, bob = make_user("alice", standard=5), make_user("bob")
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if "FROM users" in statement:
            statements.append(statement)

    event.listen(get_engine(), "before_cursor_execute", count)
    try:
        with write_session() as db:
            locked = ledger.lock_wallets(db, alice, usernames=["bob", "nobody"])
            assert sorted(locked) == sorted([alice, bob])          # an unknown name is left out
            assert locked[bob].username == "bob" and locked[alice].username == "alice"
            assert len(statements) == 1                            # both users, one statement
            again = ledger.lock_wallets(db, bob, usernames=["alice"])
            assert again == {alice: locked[alice], bob: locked[bob]}
            assert len(statements) == 1                            # locked already: nothing sent
            assert ledger.lock_wallets(db, usernames=["nobody"]) == {}
    finally:
        event.remove(get_engine(), "before_cursor_execute", count)
