"""The customer's open wallet at the MSP (GET /v1/open-wallet, its activity, redeeming a
gift certificate) and giving one (POST /v1/mall/open-gifts): over a real `msp serve` and a
real vendor that signs assertions (SQLite and PostgreSQL), plus in-process checks on a
migrated MSP database for what needs a clock or a payment's hold."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from server_stub.db import read_session, write_session
from server_stub.mall import books, open_lots, open_tokens, records
from server_stub.mall.models import GiftCertificate, RedeemFailure
from server_stub.mall.schemas import RedeemOut
from server_stub.mall.vocabulary import BookEntryKind, GiftCertificateStatus
from server_stub.models.base import utcnow
from server_stub.network import open_money
from server_stub.network.open_money import OpenKind
from server_stub.services.errors import ApiError
from tests.mall.test_msp_sessions import start_home
from tests.mall.test_records import new_member


@pytest.fixture(scope="module")
def home(backend, tmp_path_factory):
    h, cleanup = start_home(backend, tmp_path_factory.mktemp(f"open-wallet-{backend}"))
    brand = "acme"
    h.net.msp.admin("brands-add", brand, "Acme Tools", h.member_id, "--discount-bp", "1000")
    yield h
    cleanup()


def test_the_wallet_shows_each_lot_its_value_and_the_statement(home):
    user, other = home.user(), home.user()
    home.issue(user, "universal", 500, 500)
    home.issue(user, "manufacturer", 1000, 900, issuer="acme",
               expires_at=(utcnow() + timedelta(days=30)).isoformat())
    home.gift_certificate(user, 2500)
    token = home.session(user)
    w = home.wallet(token).json()
    assert w["unit_value_cents"] == 1 and w["value_cents"] == 4000
    lots = {lot["kind"]: lot for lot in w["lots"]}
    assert (lots["universal"]["tokens"], lots["universal"]["issuer_name"], lots["universal"]["expired"]) == (
        500, None, False)
    assert (lots["manufacturer"]["issuer_name"], lots["manufacturer"]["value_cents"]) == ("Acme Tools", 1000)
    assert lots["manufacturer"]["expires_at"] is not None
    assert lots["gift_certificate"]["issuer_name"] == "Mall A"
    [cert] = w["gift_certificates"]
    assert (cert["held"], cert["bought"], cert["tokens"], cert["face_cents"], cert["status"]) == (
        True, True, 2500, 2500, "active")

    statement = home.wallet(token, "/v1/open-wallet/activity").json()
    assert [(e["kind"], e["change"], e["balance_after"], e["what"], e["member"]) for e in statement] == [
        ("gift_certificate", 2500, 2500, "issued", home.member_id),
        ("manufacturer", 1000, 1000, "issued", home.member_id),
        ("universal", 500, 500, "issued", home.member_id)]
    page = home.wallet(token, "/v1/open-wallet/activity", params={"limit": 2}).json()
    assert page == statement[:2]
    rest = home.wallet(token, "/v1/open-wallet/activity", params={"before": page[-1]["entry_id"]}).json()
    assert rest == statement[2:]
    assert home.wallet(token, "/v1/open-wallet/activity", params={"before": "t0:0"}).status_code == 422
    assert home.wallet(token, "/v1/open-wallet/activity", params={"limit": 0}).status_code == 422

    # another customer of the same member sees none of it
    theirs = home.session(other)
    assert home.wallet(theirs).json() == {"unit_value_cents": 1, "value_cents": 0, "lots": [], "gift_certificates": []}
    assert home.wallet(theirs, "/v1/open-wallet/activity").json() == []


def test_a_code_moves_a_certificate_to_whoever_redeems_it_first(home):
    buyer, friend, late = home.user(), home.user(), home.user()
    sold, code = home.gift_certificate(buyer, 2000)
    buyer_t, friend_t, late_t = home.session(buyer), home.session(friend), home.session(late)
    r = home.redeem(friend_t, code.lower().replace("-", " "))       # as typed: case, spaces
    assert r.status_code == 200, r.text
    assert r.json()["moved"] is True and r.json()["gift_certificate"] == sold["gift_certificate"]
    assert r.json()["lot"]["tokens"] == 2000
    again = home.redeem(friend_t, code)
    assert again.status_code == 200 and again.json()["moved"] is False
    for token in (late_t, buyer_t):
        refused = home.redeem(token, code)
        assert refused.status_code == 409 and refused.json()["reason"] == "already_redeemed"

    friend_w, buyer_w = home.wallet(friend_t).json(), home.wallet(buyer_t).json()
    assert [(x["kind"], x["tokens"]) for x in friend_w["lots"]] == [("gift_certificate", 2000)]
    assert friend_w["gift_certificates"][0]["held"] and not friend_w["gift_certificates"][0]["bought"]
    assert buyer_w["lots"] == [] and buyer_w["value_cents"] == 0
    [bought] = buyer_w["gift_certificates"]
    assert (bought["held"], bought["bought"], bought["recipient_name"]) == (False, True, friend.full_name)
    # the statement: the friend's begins when it came, the buyer's ends when it went
    assert [(e["what"], e["change"], e["balance_after"]) for e in
            home.wallet(friend_t, "/v1/open-wallet/activity").json()] == [("received", 2000, 2000)]
    assert [(e["what"], e["change"], e["balance_after"]) for e in
            home.wallet(buyer_t, "/v1/open-wallet/activity").json()] == [("given", -2000, 0), ("issued", 2000, 2000)]
    assert home.net.msp.admin_json("verify-books")["ok"]


def test_a_certificate_for_a_recipient_is_theirs_from_the_start(home):
    buyer, recipient, stranger = home.user(), home.user(), home.user()
    _sold, code = home.gift_certificate(buyer, 700, recipient=recipient)
    rec_t = home.session(recipient)
    assert [(x["kind"], x["tokens"]) for x in home.wallet(rec_t).json()["lots"]] == [("gift_certificate", 700)]
    assert home.redeem(rec_t, code).json()["moved"] is False
    refused = home.redeem(home.session(stranger), code)
    assert refused.status_code == 409 and refused.json()["reason"] == "already_redeemed"


def test_five_wrong_codes_lock_redeeming(home):
    buyer, guesser = home.user(), home.user()
    _sold, code = home.gift_certificate(buyer, 100)
    token = home.session(guesser)
    left = []
    for i in range(5):
        r = home.redeem(token, f"AAAA-BBBB-CCCC-{i:04d}")
        assert r.status_code == 404 and r.json()["reason"] == "wrong_code", r.text
        left.append(r.json()["attempts_left"])
    assert left == [4, 3, 2, 1, 0]
    locked = home.redeem(token, code)           # even the right code, while locked
    assert locked.status_code == 423 and locked.json()["reason"] == "locked"
    assert 0 < int(locked.headers["Retry-After"]) <= 15 * 60 + 1
    assert home.wallet(token).json()["lots"] == []
    assert home.redeem(home.session(home.user()), code).status_code == 200   # another customer is not locked


# ---------------------------------------------------------------- giving a certificate (POST /v1/mall/open-gifts)

def test_the_seller_gives_its_buyers_certificate_once(home):
    buyer, friend, third = home.user(), home.user(), home.user()
    sold, code = home.gift_certificate(buyer, 1200)
    gift_op = str(uuid.uuid4())
    body = {"operation_id": sold["operation_id"], "gift_operation_id": gift_op, "from": home.customer(buyer),
            "to": home.customer(friend)}
    r = home.signed("POST", "/v1/mall/open-gifts", body, key=gift_op)
    assert r.status_code == 200, r.text
    assert r.json()["lot"]["tokens"] == 1200 and r.json()["to"]["home_user_id"] == str(friend.id)
    replay = home.signed("POST", "/v1/mall/open-gifts", body, key=gift_op)
    assert (replay.status_code, replay.json()) == (200, r.json())
    friend_t = home.session(friend)
    assert [(x["kind"], x["tokens"]) for x in home.wallet(friend_t).json()["lots"]] == [("gift_certificate", 1200)]
    assert home.redeem(friend_t, code).json()["moved"] is False
    # given once: the code, or another gift, no longer moves it
    second = str(uuid.uuid4())
    again = home.signed("POST", "/v1/mall/open-gifts", {**body, "gift_operation_id": second,
                                                         "to": home.customer(third)}, key=second)
    assert again.status_code == 409 and again.json()["reason"] == "already_redeemed"
    assert home.redeem(home.session(third), code).status_code == 409
    assert [e["what"] for e in home.wallet(friend_t, "/v1/open-wallet/activity").json()] == ["received"]


def test_gifts_are_refused_to_whoever_may_not_give(home):
    from tests.mall.test_member_calls import joined

    buyer, friend = home.user(), home.user()
    sold, _code = home.gift_certificate(buyer, 300)
    other_id, other_key, _ = joined(home.net.msp, "Another member")
    elsewhere = {"home_member": other_id, "home_user_id": "9", "full_name": "Far Away"}

    def give(frm, to, key=None, operation_id=None):
        op = str(uuid.uuid4())
        body = {"operation_id": operation_id or sold["operation_id"], "gift_operation_id": op, "from": frm, "to": to}
        if key is None:
            return home.signed("POST", "/v1/mall/open-gifts", body, key=op)
        return home.net.msp.signed("POST", "/v1/mall/open-gifts", key, other_id, body,
                                   headers={"Idempotency-Key": op})

    cases = [
        (give(home.customer(buyer), home.customer(friend), key=other_key), 403, "not_the_seller"),
        (give(home.customer(friend), home.customer(buyer)), 403, "not_the_buyer"),
        (give(home.customer(buyer), elsewhere), 422, "recipient_elsewhere"),
        (give(home.customer(buyer), home.customer(buyer)), 422, None),
        (give(home.customer(buyer), home.customer(friend), operation_id=str(uuid.uuid4())), 404, None),
    ]
    for r, status, reason in cases:
        assert r.status_code == status, r.text
        if reason:
            assert r.json()["reason"] == reason
    assert [x["tokens"] for x in home.wallet(home.session(buyer)).json()["lots"]] == [300]


# ---------------------------------------------------------------- in process: holds, spent certificates, the clock

def _certificate(db, seller: str, buyer_id: int, tokens: int) -> tuple[GiftCertificate, str]:
    op = str(uuid.uuid4())
    code = open_money.gift_code(b"k", op)
    cert = GiftCertificate(operation_id=op, face_units=tokens, buyer_customer_id=buyer_id,
                           code_sha256=open_money.gift_code_digest(code), seller_member_id=seller,
                           status=GiftCertificateStatus.ACTIVE)
    db.add(cert)
    db.flush()
    lot, _ = open_lots.issue_lot(db, open_lots.LotTerms(buyer_id, OpenKind.GIFT_CERTIFICATE, seller, tokens, seller,
                                                        10000, None, f"issue:{op}", cert.id))
    cert.lot_id = lot.id
    return cert, code


def test_held_tokens_show_in_the_statement_and_a_spent_certificate_stays(mall_db):
    seller = new_member("Wallet seller")
    with write_session() as db:
        buyer = records.customer(db, seller, "1", "Buyer").id
        friend = records.customer(db, seller, "2", "Friend").id
        cert, code = _certificate(db, seller, buyer, 1000)
        lot = open_lots.customer_lots(db, buyer)[0].lot
        op = str(uuid.uuid4())
        pending = books.account(db, f"pending:{op}:{lot.id}", lot.asset)
        books.post(db, open_lots.lot_account(db, lot), pending, 400, kind=BookEntryKind.OPEN_PAYMENT,
                   operation_id=op)
    with read_session() as db:
        statement = open_tokens.activity(db, buyer)
        assert [(e.what, e.change, e.balance_after) for e in statement] == [("held", -400, 600), ("issued", 1000, 1000)]
        [row] = open_tokens.outstanding(db, seller)
        assert (row.tokens, row.held_tokens, row.value_cents) == (600, 400, 1000)
    with pytest.raises(ApiError) as spent:
        with write_session() as db:
            open_tokens.redeem(db, friend, code)
    assert spent.value.status_code == 409 and spent.value.extra["reason"] == "spent"
    with read_session() as db:
        assert open_lots.customer_lots(db, buyer)[0].tokens == 600 and open_lots.customer_lots(db, friend) == []
        assert books.verify(db).ok


def test_the_redeem_lock_lasts_fifteen_minutes_after_the_fifth_wrong_code(mall_db):
    seller = new_member("Lock seller")
    with write_session() as db:
        guesser = records.customer(db, seller, "1", "Guesser").id
        buyer = records.customer(db, seller, "2", "Buyer").id
        _cert, code = _certificate(db, seller, buyer, 100)
    t0 = utcnow()
    for i in range(5):
        with write_session() as db:
            refusal = open_tokens.redeem(db, guesser, "WRONG-CODE", now=t0 + timedelta(minutes=2 * i))
        assert isinstance(refusal, ApiError) and refusal.status_code == 404
    last = t0 + timedelta(minutes=8)
    for minutes, locked in ((1, True), (14.9, True), (15.1, False)):
        with write_session() as db:
            assert (open_tokens.redeem_locked_until(db, guesser, last + timedelta(minutes=minutes)) is not None) == locked
    with pytest.raises(ApiError) as refused:
        with write_session() as db:
            open_tokens.redeem(db, guesser, code, now=last + timedelta(minutes=10))
    assert refused.value.status_code == 423
    with read_session() as db:   # a refusal while locked records nothing (the lock does not grow)
        assert db.scalar(select(func.count()).select_from(RedeemFailure).where(RedeemFailure.customer_id == guesser)) == 5
    with write_session() as db:
        done = open_tokens.redeem(db, guesser, code, now=last + timedelta(minutes=16))
    assert isinstance(done, RedeemOut) and done.moved
    # five wrong codes spread over more than 15 minutes lock nothing
    with write_session() as db:
        slow = records.customer(db, seller, "3", "Slow").id
    for i in range(5):
        with write_session() as db:
            open_tokens.redeem(db, slow, "WRONG", now=t0 + timedelta(minutes=4 * i))
    with read_session() as db:
        assert open_tokens.redeem_locked_until(db, slow, t0 + timedelta(minutes=16.5)) is None


def test_two_customers_redeeming_one_code_at_once_one_wins(mall_db):
    import threading

    seller = new_member("Race seller")
    with write_session() as db:
        buyer = records.customer(db, seller, "1", "Buyer").id
        racers = [records.customer(db, seller, str(10 + i), f"Racer {i}").id for i in range(4)]
        _cert, code = _certificate(db, seller, buyer, 500)
    outcomes: list[object] = []
    start = threading.Barrier(len(racers))

    def race(customer_id: int) -> None:
        start.wait()
        try:
            with write_session() as db:
                outcomes.append(open_tokens.redeem(db, customer_id, code))
        except ApiError as e:
            outcomes.append(e.status_code)

    threads = [threading.Thread(target=race, args=(c,)) for c in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    won = [o for o in outcomes if isinstance(o, RedeemOut)]
    assert len(won) == 1 and won[0].moved and sorted(o for o in outcomes if isinstance(o, int)) == [409] * 3
    with read_session() as db:
        holders = [c for c in racers if open_lots.customer_lots(db, c)]
        assert len(holders) == 1 and open_lots.customer_lots(db, buyer) == []
        assert [e.what for e in open_tokens.activity(db, holders[0])] == ["received"]
        assert books.verify(db).ok


def test_a_payment_waiting_on_a_redeem_does_not_spend_the_certificate_for_its_old_holder(mall_db):
    import threading
    import time

    seller = new_member("Lock order seller")
    with write_session() as db:
        buyer = records.customer(db, seller, "1", "Buyer").id
        friend = records.customer(db, seller, "2", "Friend").id
        _cert, code = _certificate(db, seller, buyer, 800)
    redeemed, release = threading.Event(), threading.Event()
    seen: list[list[int]] = []

    def redeem_and_hold() -> None:
        with write_session() as db:
            assert isinstance(open_tokens.redeem(db, friend, code), RedeemOut)
            redeemed.set()
            release.wait(10)          # commit only once the payment's read is waiting on the lot

    def plan_for_buyer() -> None:
        redeemed.wait(10)
        with write_session() as db:  # what open payments do: lock the customer's lots, then plan
            seen.append([b.lot.id for b in open_lots.customer_lots(db, buyer, for_update=True)])

    a, b = threading.Thread(target=redeem_and_hold), threading.Thread(target=plan_for_buyer)
    a.start()
    b.start()
    redeemed.wait(10)
    time.sleep(0.5)
    assert seen == []                  # still waiting for the redeem's locks
    release.set()
    a.join(20)
    b.join(20)
    assert seen == [[]]                # the lot had moved: nothing of it for the old holder
