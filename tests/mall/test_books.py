"""The MSP's books (server_stub/mall/books.py) on a real migrated database,
SQLite and PostgreSQL: conservation under random postings, refusals that
change nothing, verify() catching a broken cache, concurrent spends."""
from __future__ import annotations

import itertools
import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from server_stub.db import read_session, write_session
from server_stub.mall import books
from server_stub.mall.models import MallAccount, MallTransfer
from server_stub.mall.vocabulary import CENT_ASSET, BookEntryKind
from server_stub.services.errors import ApiError
from tests.support.msp import Msp

_run = itertools.count(1)
ASSETS = [CENT_ASSET, books.token_asset("m-aaaaaaaaaa"), books.token_asset("m-bbbbbbbbbb")]

account_specs = st.lists(st.tuples(st.sampled_from(ASSETS), st.booleans()), min_size=2, max_size=6)
postings = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(1, 500)), max_size=25)


def _transfer_count() -> int:
    with read_session() as db:
        return len(db.scalars(select(MallTransfer.id)).all())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=account_specs, moves=postings)
def test_random_postings_keep_every_asset_at_zero(mall_db, specs, moves):
    run = next(_run)
    with write_session() as db:
        accounts = [books.account(db, f"t{run}:{i}", asset, negative_allowed=neg)
                    for i, (asset, neg) in enumerate(specs)]
        ids = [a.id for a in accounts]
    model = {i: 0 for i in range(len(specs))}
    for src, dst, amount in moves:
        src, dst = src % len(specs), dst % len(specs)
        same_asset = specs[src][0] == specs[dst][0]
        allowed = src != dst and same_asset and (specs[src][1] or model[src] >= amount)
        before = _transfer_count()
        try:
            with write_session() as db:
                a, b = (db.get(MallAccount, ids[src]), db.get(MallAccount, ids[dst]))
                books.post(db, a, b, amount, kind=BookEntryKind.DEPOSIT)
        except ApiError:
            assert not allowed, (src, dst, amount, model)
            assert _transfer_count() == before        # a refusal writes nothing
            continue
        assert allowed, (src, dst, amount, model)
        model[src] -= amount
        model[dst] += amount
    with read_session() as db:
        report = books.verify(db)
        balances = {i: db.get(MallAccount, ids[i]).balance for i in model}
    assert report.ok, report
    assert all(total == 0 for total in report.totals.values())
    assert balances == model
    assert all(balances[i] >= 0 for i in model if not specs[i][1])


def test_refusals_name_the_problem_and_write_nothing(mall_db):
    with write_session() as db:
        issuance = books.account(db, "msp:issuance", CENT_ASSET, negative_allowed=True)
        deposit = books.account(db, "member:m-x:deposit", CENT_ASSET)
        tokens = books.account(db, "tokens:m-x", books.token_asset("m-x"), negative_allowed=True)
        books.post(db, issuance, deposit, 100, kind=BookEntryKind.DEPOSIT, operation_id="op-1")
    cases = [
        (lambda db, a, b, t: books.post(db, b, a, 101, kind=BookEntryKind.PAYOUT), 409, "less than 101"),
        (lambda db, a, b, t: books.post(db, a, b, 0, kind=BookEntryKind.DEPOSIT), 422, "integer from 1"),
        (lambda db, a, b, t: books.post(db, a, b, -5, kind=BookEntryKind.DEPOSIT), 422, "integer from 1"),
        (lambda db, a, b, t: books.post(db, a, b, True, kind=BookEntryKind.DEPOSIT), 422, "integer from 1"),
        (lambda db, a, b, t: books.post(db, a, a, 5, kind=BookEntryKind.DEPOSIT), 422, "two different"),
        (lambda db, a, b, t: books.post(db, a, t, 5, kind=BookEntryKind.DEPOSIT), 422, "cannot move cent"),
    ]
    for act, status, words in cases:
        with pytest.raises(ApiError) as refused:
            with write_session() as db:
                act(db, db.get(MallAccount, issuance.id), db.get(MallAccount, deposit.id),
                    db.get(MallAccount, tokens.id))
        assert refused.value.status_code == status and words in refused.value.detail
    with read_session() as db:
        assert books.find_account(db, "member:m-x:deposit").balance == 100
        assert books.find_account(db, "msp:issuance").balance == -100
        assert len(db.scalars(select(MallTransfer)).all()) == 1
        assert books.verify(db).ok
    with write_session() as db, pytest.raises(RuntimeError, match="exists as cent"):
        books.account(db, "member:m-x:deposit", CENT_ASSET, negative_allowed=True)


def test_verify_finds_a_cache_that_disagrees_with_the_transfers(mall_db, tmp_path):
    operator = Msp(mall_db, tmp_path / "operator")   # `msp admin` on this database (no server needed)
    with write_session() as db:
        a = books.account(db, "msp:a", CENT_ASSET, negative_allowed=True)
        b = books.account(db, "msp:b", CENT_ASSET)
        books.post(db, a, b, 40, kind=BookEntryKind.DEPOSIT)
    with read_session() as db:
        assert books.verify(db).ok
    assert operator.admin_json("verify-books") == {"ok": True, "totals": {"cent": 0}, "mismatched_accounts": [],
                                                   "negative_accounts": [], "wrong_asset_transfers": []}
    with write_session() as db:   # what a bug (or a hand edit) would do
        db.execute(update(MallAccount).where(MallAccount.code == "msp:b").values(balance=41))
    with read_session() as db:
        report = books.verify(db)
    assert not report.ok and report.mismatched_accounts == ["msp:b"]
    refused = operator.admin("verify-books", check=False)
    assert refused.returncode == 2 and refused.stdout == ""
    problem = json.loads(refused.stderr.strip().splitlines()[-1])
    assert problem["detail"] == "the books do not balance" and problem["report"]["mismatched_accounts"] == ["msp:b"]
    with write_session() as db:   # a transfer whose asset is not its accounts'
        db.add(MallTransfer(from_account_id=a.id, to_account_id=b.id, amount=1, asset="token:m-z",
                            kind=BookEntryKind.DEPOSIT))
        db.flush()
        odd = db.scalars(select(MallTransfer.id).where(MallTransfer.asset == "token:m-z")).one()
    with read_session() as db:
        assert books.verify(db).wrong_asset_transfers == [odd]


def test_concurrent_spends_of_one_balance_never_overdraw(mall_db):
    with write_session() as db:
        source = books.account(db, "msp:source", CENT_ASSET, negative_allowed=True)
        wallet = books.account(db, "member:m-c:deposit", CENT_ASSET)
        sink = books.account(db, "msp:sink", CENT_ASSET)
        books.post(db, source, wallet, 100, kind=BookEntryKind.DEPOSIT)
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def spend() -> None:
        start.wait()
        try:
            with write_session() as db:
                books.post(db, db.get(MallAccount, wallet.id), db.get(MallAccount, sink.id), 30,
                           kind=BookEntryKind.PAYOUT)
            outcomes.append("ok")
        except books.BooksRefused:
            outcomes.append("refused")

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] * 3 + ["refused"] * 5
    with read_session() as db:
        assert books.find_account(db, "member:m-c:deposit").balance == 10
        assert books.find_account(db, "msp:sink").balance == 90
        assert books.verify(db).ok
