"""FIG 13 step 5: vendors tell the MSP their token sales, grants, spends and
expiries (and their counts when they join), never on the user's path, and the MSP records them with the royalty owed (deposit mode:
debited at once; invoice mode: for the statement). In process on both
databases for the MSP's rules; then a real vendor and a real `msp serve`."""
from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from server_stub.db import read_session, write_session
from server_stub.mall import books, members, notifications
from server_stub.mall.models import FeeRecord, TokenNotice, TokenRecord
from server_stub.mall.schemas import FeesChange, JoinIn
from server_stub.mall.vocabulary import RoyaltyMode
from server_stub.services.errors import ApiError
from tests.mall.test_exchange_network import join
from tests.support.msp import join_body
from tests.support.store import make_catalog, order, register_device

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).isoformat()


def add_member(db, name: str, value_cents: int, *, royalty_bp: int = 0, service_charge_bp: int = 0,
               fixed_fee_cents: int = 0, mode: RoyaltyMode = RoyaltyMode.INVOICE) -> str:
    code, _ = members.invite(db, name)
    joined = members.join(db, JoinIn.model_validate(join_body(code, Ed25519PrivateKey.generate(), name=name,
                                                              value_cents=value_cents)))
    member_id = joined.member.member_id
    members.set_fees(db, member_id, FeesChange(service_charge_bp=service_charge_bp, royalty_bp=royalty_bp,
                                               fixed_fee_cents=fixed_fee_cents, royalty_mode=mode))
    return member_id


def test_a_sale_in_invoice_mode_counts_the_tokens_and_accrues_the_exact_royalty(mall_db):
    with write_session() as db:
        m = add_member(db, "Invoicer", 10, royalty_bp=125)   # 1.25 %
    with write_session() as db:
        out = notifications.record_notice(db, m, "sale:1", {"event": "sale", "tokens": 333, "cents": 3333,
                                                            "at": AT})
        notifications.record_notice(db, m, "spend:7", {"event": "spend", "tokens": 40, "at": AT})
    # 3333 cents x 1.25 % = 41.6625 cents = 4166 units (floored); nothing paid, all invoiced
    assert out == {"event": "sale", "tokens": 333, "royalty_micro_cents": 4166, "paid_from_deposit_cents": 0,
                   "invoiced_micro_cents": 4166}
    with read_session() as db:
        rec = db.get(TokenRecord, m)
        assert (rec.issued, rec.spent, rec.circulation) == (333, 40, 293)
        fees = db.scalars(select(FeeRecord).where(FeeRecord.member_id == m)).all()
        assert [(f.kind, f.amount_micro_cents, f.period_id) for f in fees] == [("royalty", 4166, None)]
        assert books.verify(db).ok


def test_deposit_mode_debits_whole_cents_at_once_and_invoices_what_the_deposit_lacks(mall_db):
    with write_session() as db:
        m = add_member(db, "Depositor", 10, royalty_bp=200, mode=RoyaltyMode.DEPOSIT)   # 2 %
        assert notifications.record_deposit(db, m, 50)["deposit_cents"] == 50
    with write_session() as db:
        first = notifications.record_notice(db, m, "sale:1", {"event": "sale", "tokens": 100, "cents": 1999,
                                                              "at": AT})
        second = notifications.record_notice(db, m, "sale:2", {"event": "sale", "tokens": 100, "cents": 1000,
                                                               "at": AT})
    # 1999 x 2 % = 39.98 cents: 39 from the deposit, 98 units invoiced; then 20 cents, only 11 left
    assert (first["paid_from_deposit_cents"], first["invoiced_micro_cents"]) == (39, 98)
    assert (second["paid_from_deposit_cents"], second["invoiced_micro_cents"]) == (11, 900)
    with read_session() as db:
        assert notifications.find_deposit(db, m).balance == 0
        assert books.find_account(db, notifications.EARNINGS_ACCOUNT).balance == 50
        report = books.verify(db)
        assert report.ok and report.totals["cent"] == 0


@pytest.mark.parametrize("body, words", [
    ({"event": "sale", "tokens": 0, "cents": 1, "at": AT}, "greater than or equal to 1"),
    ({"event": "spend", "tokens": 5, "cents": 3, "at": AT}, "no cents"),
    ({"event": "refund", "tokens": 5, "at": AT}, "Input should be"),
    ({"event": "sale", "tokens": 5, "cents": 1, "at": "2026-12-01T12:00:00"}, "timezone"),
    ({"event": "sale", "tokens": 5, "cents": 1, "at": AT, "extra": 1}, "Extra inputs"),
])
def test_a_bad_notice_is_refused_and_changes_nothing(mall_db, body, words):
    with write_session() as db:
        m = add_member(db, "Careful", 10, royalty_bp=100)
    with pytest.raises(ApiError) as e, write_session() as db:
        notifications.record_notice(db, m, "sale:9", body)
    assert e.value.status_code == 422 and words in e.value.body()["detail"]
    with read_session() as db:
        rec = db.get(TokenRecord, m)
        assert (rec.issued, rec.spent) == (0, 0)   # created at joining, untouched
        assert db.scalar(select(func.count()).select_from(TokenNotice)) == 0


def test_grants_expiries_and_the_opening_count_in_the_circulation_and_owe_no_royalty(mall_db):
    with write_session() as db:
        m = add_member(db, "Counter", 10, royalty_bp=500)
    with write_session() as db:
        opened = notifications.record_notice(db, m, "opening", {"event": "opening", "issued": 90, "granted": 12,
                                                                "spent": 30, "expired": 2, "at": AT})
        notifications.record_notice(db, m, "grant:4", {"event": "grant", "tokens": 8, "at": AT})
        notifications.record_notice(db, m, "expiry:5", {"event": "expiry", "tokens": 3, "at": AT})
    assert opened["circulation"] == 90 + 12 - 30 - 2
    with read_session() as db:
        rec = db.get(TokenRecord, m)
        assert (rec.issued, rec.granted, rec.spent, rec.expired, rec.circulation) == (90, 20, 30, 5, 75)
        assert db.scalar(select(func.count()).select_from(FeeRecord)) == 0   # free tokens earn no royalty


@pytest.mark.parametrize("body, words", [
    ({"event": "opening", "issued": -1, "granted": 0, "spent": 0, "expired": 0, "at": AT}, "greater than or equal"),
    ({"event": "opening", "issued": 1, "granted": 0, "spent": 0, "at": AT}, "expired: Field required"),
    ({"event": "opening", "issued": 1, "granted": 0, "spent": 0, "expired": 0, "tokens": 5, "at": AT},
     "tokens: Extra inputs"),
    ({"event": "grant", "tokens": 5, "cents": 10, "at": AT}, "a grant carries no cents"),
])
def test_a_bad_opening_or_grant_is_refused_and_changes_nothing(mall_db, body, words):
    with write_session() as db:
        m = add_member(db, "Strict", 10)
    with pytest.raises(ApiError) as e, write_session() as db:
        notifications.record_notice(db, m, "opening", body)
    assert e.value.status_code == 422 and words in e.value.body()["detail"], e.value.body()
    with read_session() as db:
        rec = db.get(TokenRecord, m)
        assert (rec.issued, rec.granted, rec.spent, rec.expired) == (0, 0, 0, 0)


def test_a_deposit_for_no_member_or_of_no_cents_is_refused(mall_db):
    with write_session() as db:
        m = add_member(db, "Payer", 10)
    for member, cents, status in (("m-nobody0000", 10, 404), (m, 0, 422), (m, -5, 422)):
        with pytest.raises(ApiError) as e, write_session() as db:
            notifications.record_deposit(db, member, cents)
        assert e.value.status_code == status
    with read_session() as db:
        assert notifications.find_deposit(db, m) is None or notifications.find_deposit(db, m).balance == 0


# ---------------------------------------------------------------- real processes

def _records(msp, member_id):
    return msp.admin_json("token-records", member_id)[0]


def _wait(fn, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_a_vendor_in_a_mall_tells_the_msp_its_sales_grants_spends_and_expiries(msp, server_factory):
    vendor = server_factory()
    # before joining nothing is queued: a store in no mall sends nothing; what it sold and gave
    # until then reaches the MSP once, as the opening counts of joining
    early = vendor.register()
    r = vendor.api("POST", "/v1/token-purchases", early, json={
        "tokens": 10, "method": "card", "card_number": "4242424242424242", "card_expiry": "12/40", "card_cvc": "123"})
    assert r.status_code == 201, r.text
    vendor.admin_cli("grant", early.username, "7", "--kind", "incentive")
    member_id = join(msp, vendor, "Notifier", 10, "Note")
    opening = _wait(lambda: (lambda x: x if x["granted"] == 7 else None)(_records(msp, member_id)))
    assert opening and (opening["issued"], opening["granted"], opening["circulation"]) == (10, 7, 17), opening
    msp.admin("set-fees", member_id, "--royalty-bp", "300", "--royalty-mode", "deposit")
    msp.admin("deposit", member_id, "100")
    u = vendor.register()
    r = vendor.api("POST", "/v1/token-purchases", u, json={
        "tokens": 500, "method": "card", "card_number": "4242424242424242", "card_expiry": "12/40", "card_cvc": "123"})
    assert r.status_code == 201, r.text
    paid_cents = r.json()["amount_cents"]
    off = vendor.api("POST", "/v1/token-purchases", u, json={"tokens": 100, "method": "check"})
    assert off.status_code == 202
    vendor.admin_cli("confirm-purchase", str(off.json()["id"]))
    off_cents = off.json()["amount_cents"]
    cat = make_catalog(vendor)
    keys = register_device(vendor, u)
    placed = order(vendor, u, keys, [{"offer_id": cat.offers[("uses", "rent_uses")], "quantity": 10}])
    assert placed.status_code == 201, placed.text
    spent = placed.json()["required_tokens"]
    # a lot that expires soon: a few seconds, since the CLI that grants it takes a second or more
    # to start on a loaded machine, and a lot already expired when granted is refused
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=6)
    vendor.admin_cli("grant", u.username, "25", "--kind", "incentive", "--expires-at", soon.isoformat())
    vendor.admin_cli("grant", u.username, "3")
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.5)
    vendor.admin_cli("grant", u.username, "1")   # touching the wallet sweeps the expired lot
    rec = _wait(lambda: (lambda x: x if x["issued"] == 610 and x["spent"] == spent and x["expired"] == 25
                         and x["granted"] == 7 + 25 + 3 + 1 else None)(_records(msp, member_id)))
    assert rec, _records(msp, member_id)
    assert rec["circulation"] == 610 + 7 + 3 + 1 - spent
    assert msp.admin_json("audit")["ok"] is True
    royalty_units = paid_cents * 100 * 300 // 10_000 + off_cents * 100 * 300 // 10_000
    assert rec["deposit_cents"] == 100 - min(100, paid_cents * 3 // 100 + off_cents * 3 // 100)
    assert royalty_units > 0
    assert msp.admin_json("verify-books")["ok"] is True
    assert json.loads(vendor.admin_cli("verify-ledger").stdout)["ok"] is True


def test_a_notice_sent_again_gets_its_first_answer_and_counts_once(msp):
    key = Ed25519PrivateKey.generate()
    code = msp.admin_json("invite", "Replayer")["invitation"]
    joined = msp.join(join_body(code, key, name="Replayer"), key)
    assert joined.status_code == 201, joined.text
    member_id = joined.json()["member_id"]
    msp.admin("set-fees", member_id, "--royalty-bp", "1000")
    body = {"event": "sale", "tokens": 50, "cents": 505, "at": AT}
    first = msp.signed("POST", "/v1/mall/notices", key, member_id, body, headers={"Idempotency-Key": "sale:1"})
    again = msp.signed("POST", "/v1/mall/notices", key, member_id, body, headers={"Idempotency-Key": "sale:1"})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and first.json()["royalty_micro_cents"] == 5050
    other = msp.signed("POST", "/v1/mall/notices", key, member_id, {**body, "tokens": 51},
                       headers={"Idempotency-Key": "sale:1"})
    assert other.status_code == 422
    bad = msp.signed("POST", "/v1/mall/notices", key, member_id, {**body, "cents": -1},
                     headers={"Idempotency-Key": "sale:2"})
    assert bad.status_code == 422
    unsigned = msp.post("/v1/mall/notices", json=body, headers={"Idempotency-Key": "sale:3"})
    assert unsigned.status_code == 401
    assert _records(msp, member_id)["issued"] == 50
