"""A vendor's side of exchanges (server_stub/services/mall.py), in-process on a
real migrated database: quotes lock the rate, confirming holds only the tokens
that move, the MSP's result posts or voids the hold, and the receiving member
issues into a linked account. (The network run with real MSP and vendor
processes is in tests/mall/.)"""
from __future__ import annotations

from datetime import timedelta

import pytest

from server_stub.db import read_session, write_session
from server_stub.models.base import utcnow
from server_stub.models.mall import ExchangeQuote
from server_stub.models.user import User
from server_stub.services import accounts, ledger, mall, wallet
from server_stub.services.errors import ApiError
from server_stub.vocabulary import ExchangeStatus

ME, OTHER, BLOCKED = "m-aaaaaaaaaa", "m-bbbbbbbbbb", "m-cccccccccc"
MSP_KEY = "ed25519:" + "A" * 43


def member(member_id, value, status="active", accepts="all", **extra):
    return {"member_id": member_id, "name": f"Mall {member_id[-1].upper()}", "base_url": f"http://{member_id}",
            "network_key": "ed25519:" + "B" * 43, "code_keys": [], "token": {"name": f"Token-{member_id[-1]}",
                                                                           "value_cents": value},
            "status": status, "groups": [], "parent": None, "accepts": accepts, **extra}


def directory(version=1, my_value=10, other_value=5, **extra):
    return {"version": version, "msp": {"member_id": "msp", "network_key": MSP_KEY},
            "members": [member(ME, my_value, fees={"service_charge_bp": 200, "royalty_bp": 100}),
                        member(OTHER, other_value), member(BLOCKED, 5, status="blocked")], **extra}


@pytest.fixture()
def db_url(backend, tmp_path):
    from tests.support.server import migrated_database

    with migrated_database(backend, tmp_path, data_dir=str(tmp_path), argon2_memory_kib=8192,
                           argon2_time_cost=1) as url:
        with write_session() as db:
            mall.record_membership(db, member_id=ME, msp_url="http://msp", msp_key=MSP_KEY, directory=directory())
        yield url


def make_user(name, standard=0, incentive=0):
    with write_session() as db:
        u = accounts.create_user(db, username=name, password="password 123", pin="1234",
                                 full_name=name.title(), email=f"{name}@example.com")
        for kind, n in (("standard", standard), ("incentive", incentive)):
            if n:
                wallet.grant_tokens(db, name, n, kind)
        return u.id


def quote(user_id, to=OTHER, tokens=100):
    with write_session() as db:
        return mall.quote_view(mall.quote_exchange(db, db.get(User, user_id), to, tokens))


def refusal(fn, *args):
    with pytest.raises(ApiError) as e:
        with write_session() as db:
            fn(db, *args)
    return e.value


def balances(user_id):
    with read_session() as db:
        w = ledger.load_wallet(db, db.get(User, user_id))
        return w.transferable, w.held


def test_quote_shows_the_patent_example(db_url):
    u = make_user("alice", standard=150)
    q = quote(u)
    assert (q["tokens_from"], q["tokens_to"], q["value_cents"]) == (100, 200, 1000)
    assert q["fees_cents"] == 30            # 2 % service charge + 1 % royalty of $10.00
    assert q["expires_at"] > utcnow()


def test_confirm_holds_only_paid_tokens_then_completion_posts_them_out(db_url):
    u = make_user("bob", standard=120, incentive=500)
    q = quote(u)
    with write_session() as db:
        x, _ = mall.confirm_exchange(db, u, q["quote_id"])
        exchange_id = x.id
    assert balances(u) == (20, 100)                      # incentive tokens never leave
    with write_session() as db:
        assert mall.finish_exchange(db, exchange_id, True).status == ExchangeStatus.COMPLETED
    with write_session() as db:                          # a repeated result changes nothing
        mall.finish_exchange(db, exchange_id, True)
    assert balances(u) == (20, 0)
    e = refusal(mall.finish_exchange, exchange_id, False)
    assert e.status_code == 409
    with read_session() as db:
        assert ledger.verify_ledger(db).ok


def test_failure_gives_the_tokens_back(db_url):
    u = make_user("carol", standard=100)
    q = quote(u)
    with write_session() as db:
        x, _ = mall.confirm_exchange(db, u, q["quote_id"])
        exchange_id = x.id
    with write_session() as db:
        mall.finish_exchange(db, exchange_id, False, "the member did not answer in time")
    assert balances(u) == (100, 0)


def test_a_quote_is_used_once_by_its_own_user_before_it_expires(db_url):
    u, other = make_user("dave", standard=300), make_user("erin", standard=300)
    q = quote(u)
    assert refusal(mall.confirm_exchange, other, q["quote_id"]).status_code == 404
    with write_session() as db:
        mall.confirm_exchange(db, u, q["quote_id"])
    assert refusal(mall.confirm_exchange, u, q["quote_id"]).status_code == 409
    q2 = quote(u)
    with write_session() as db:
        db.get(ExchangeQuote, q2["quote_id"]).expires_at = utcnow() - timedelta(seconds=1)
    e = refusal(mall.confirm_exchange, u, q2["quote_id"])
    assert e.status_code == 409 and e.extra["reason"] == "quote_expired"
    assert balances(u) == (200, 100)


def test_a_changed_rate_refuses_the_quote_and_moves_nothing(db_url):
    u = make_user("frank", standard=300)
    q = quote(u)
    with write_session() as db:
        mall.store_directory(db, mall.membership(db), directory(version=2, other_value=4))
    e = refusal(mall.confirm_exchange, u, q["quote_id"])
    assert e.status_code == 409 and e.extra["reason"] == "rate_changed"
    assert balances(u) == (300, 0)


def test_short_of_paid_tokens_is_402_and_moves_nothing(db_url):
    u = make_user("gina", standard=50, incentive=500)
    q = quote(u)
    e = refusal(mall.confirm_exchange, u, q["quote_id"])
    assert e.status_code == 402
    assert balances(u) == (50, 0)


@pytest.mark.parametrize("to, tokens, status", [
    (BLOCKED, 100, 403), ("m-nobodyhere", 100, 404), (ME, 100, 422), (OTHER, 0, 422),
])
def test_bad_quotes_are_refused(db_url, to, tokens, status):
    u = make_user("hank", standard=300)
    with pytest.raises(ApiError) as e:
        quote(u, to, tokens)
    assert e.value.status_code == status


def test_a_member_that_does_not_accept_our_tokens_refuses_the_quote(db_url):
    u = make_user("ivy", standard=300)
    with write_session() as db:
        d = directory(version=3)
        d["members"][1]["accepts"] = {"mode": "listed", "members": [BLOCKED]}
        mall.store_directory(db, mall.membership(db), d)
    with pytest.raises(ApiError) as e:
        quote(u)
    assert e.value.status_code == 403


def test_an_older_directory_is_ignored_and_another_msp_key_refused(db_url):
    with write_session() as db:
        row = mall.membership(db)
        mall.store_directory(db, row, directory(version=5))
        mall.store_directory(db, row, directory(version=4, other_value=1))
    with read_session() as db:
        _, d = mall.directory(db)
        assert d.version == 5 and d.member(OTHER).token_value_cents == 5
    bad = directory(version=9)
    bad["msp"]["network_key"] = "ed25519:" + "C" * 43
    assert refusal(lambda db: mall.store_directory(db, mall.membership(db), bad)).status_code == 403


def test_issue_creates_one_linked_account_per_home_user(db_url):
    for op in ("op-1", "op-2"):
        with write_session() as db:
            mall.issue_for_exchange(db, operation_id=op, home_member_id=OTHER, home_user_id="42",
                                    full_name="Zed Home", tokens=200, from_member_name="Mall B")
    with read_session() as db:
        from server_stub.models.mall import MallLink
        links = db.query(MallLink).all()
        assert len(links) == 1
        user = db.get(User, links[0].user_id)
        assert ledger.load_wallet(db, user).transferable == 400
        assert user.username.startswith("~") and user.status == "active"
        assert not accounts.pin_matches(user, "1234") and not accounts.pin_matches(user, user.pin_hash)
        assert ledger.verify_ledger(db).ok


def test_two_requests_creating_one_linked_account_at_once_share_it(db_url):
    """An issue and a sign-on (or two issues) for a new customer at the same moment
    (found by tests/mall/test_network_bank.py): on PostgreSQL the second insert waits for the
    first's and fails on the unique name; it takes the first's account instead of a 500.
    On SQLite the second waits for the first's write transaction and finds the account."""
    import threading
    import time

    from server_stub.models.mall import MallLink

    flushed, release = threading.Event(), threading.Event()
    ids: dict[str, int] = {}
    errors: list[BaseException] = []

    def first():
        try:
            with write_session() as db:
                ids["first"] = mall.linked_user(db, OTHER, "77", "Ann Home").id
                flushed.set()
                release.wait(10)   # commit only once the second is waiting on us
        except BaseException as e:
            errors.append(e)
            flushed.set()

    def second():
        try:
            with write_session() as db:
                ids["second"] = mall.linked_user(db, OTHER, "77", "Ann Home").id
        except BaseException as e:
            errors.append(e)

    one = threading.Thread(target=first)
    one.start()
    assert flushed.wait(10)
    two = threading.Thread(target=second)
    two.start()
    time.sleep(0.5)
    release.set()
    one.join(10)
    two.join(10)
    assert not errors, errors
    assert ids["first"] == ids["second"]
    with read_session() as db:
        assert db.query(MallLink).filter(MallLink.home_user_id == "77").count() == 1
