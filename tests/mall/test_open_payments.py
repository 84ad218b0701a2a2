"""Open payments at the MSP (server_stub/mall/open_payments.py; docs/mall.md "Paying
with open tokens") on SQLite and PostgreSQL: in process on a migrated MSP database
(a plan of each kind, combined, short, two payments racing for one lot), and over a
real `msp serve` with signed calls (plan, authorize, the first answer final)."""
from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import sqlalchemy as sa
from sqlalchemy import select

from server_stub.db import read_session, write_session
from server_stub.mall import books, open_lots, open_payments, records
from server_stub.mall.models import Brand, BrandProduct, Group, GroupMember, OpenLot, OpenPayment
from server_stub.models.base import utcnow
from server_stub.network.open_money import OpenKind
from tests.mall.test_notifications import add_member
from tests.support.msp import Msp, join_body

USER = "7"


def customer(home: str, user: str = USER) -> dict:
    return {"home_member": home, "home_user_id": user, "full_name": "Ada Lovelace"}


def give(db, home: str, kind: OpenKind, tokens: int, *, issuer: str | None = None, seller: str | None = None,
         paid_bp: int = 10000, expires_at=None, user: str = USER) -> int:
    """A lot for the customer (as the MSP's open-issues makes them), its id."""
    cust = records.customer(db, home, user, "Ada Lovelace")
    lot, made = open_lots.issue_lot(db, open_lots.LotTerms(
        customer_id=cust.id, kind=kind, issuer=issuer, tokens=tokens, seller_member_id=seller or home,
        paid_bp=paid_bp, expires_at=expires_at, origin=f"issue:{uuid.uuid4()}"))
    assert made
    return lot.id


def brand(db, brand_id: str, member: str, *, products: dict[str, list[int]], free_cap_units: int = 0,
          discount_bp: int = 1000) -> None:
    db.add(Brand(brand_id=brand_id, name=brand_id.title(), member_id=member, discount_bp=discount_bp,
                 free_cap_units=free_cap_units))
    db.flush()
    for at, ids in products.items():
        db.add_all(BrandProduct(member_id=at, product_id=i, brand_id=brand_id) for i in ids)
    db.flush()


def group(db, name: str, *member_ids: str) -> None:
    g = Group(name=name, discount_bp=500)
    db.add(g)
    db.flush()
    db.add_all(GroupMember(group_id=g.id, member_id=m) for m in member_ids)
    db.flush()


def lines(*units: int, product_id: int = 1) -> list[dict]:
    return [{"line": i + 1, "product_id": product_id + i, "quantity": 1, "units": u} for i, u in enumerate(units)]


def plan_of(member: str, home: str, body_lines: list[dict]) -> dict:
    from server_stub.mall.schemas import OpenPlanIn

    with read_session() as db:
        return open_payments.plan(db, member, OpenPlanIn.model_validate(
            {"customer": customer(home), "lines": body_lines}))["plan"]


def pay(member: str, home: str, body_lines: list[dict], op: str | None = None):
    op = op or str(uuid.uuid4())
    return op, open_payments.receive_payment(member, op, {"operation_id": op, "customer": customer(home),
                                                          "lines": body_lines})


def balance(db, code: str) -> int:
    acct = books.find_account(db, code)
    return int(acct.balance) if acct else 0


def lot_balance(db, lot_id: int) -> int:
    return balance(db, f"lot:{db.get(OpenLot, lot_id).origin}")


def members2():
    with write_session() as db:
        return add_member(db, "Seller", 10), add_member(db, "Accepting", 10)


def test_each_kind_pays_alone_when_it_suffices_and_the_plan_holds_nothing(mall_db):
    s, a = members2()
    with write_session() as db:
        brand(db, "acme", s, products={a: [1]})
        group(db, "north", s, a)
        uni = give(db, s, OpenKind.UNIVERSAL, 5000)
        mfr = give(db, s, OpenKind.MANUFACTURER, 800, issuer="acme", paid_bp=9000)
        grp = give(db, s, OpenKind.GROUP, 900, issuer="north", paid_bp=9500)
        gift = give(db, s, OpenKind.GIFT_CERTIFICATE, 2500, issuer=s)
    # product 1 is acme's at A: manufacturer tokens pay it alone
    p = plan_of(a, s, lines(700))
    assert [(x["lot_id"], x["kind"], x["tokens"]) for x in p["portions"]] == [(mfr, "manufacturer", 700)]
    assert p["short_units"] == 0 and p["change"] == []
    # product 2 is no brand's: the group's tokens (A is in north), then the certificate, then universal
    assert [(x["lot_id"], x["kind"]) for x in plan_of(a, s, lines(900, product_id=2))["portions"]] == [(grp, "group")]
    g = plan_of(a, s, lines(1000, product_id=2))
    assert [(x["lot_id"], x["kind"], x["tokens"]) for x in g["portions"]] == [(gift, "gift_certificate", 1000)]
    assert [(x["lot_id"], x["kind"], x["asset"], x["tokens"]) for x in g["change"]] == [
        (gift, "universal", "open:universal", 1500)]
    assert [(x["lot_id"], x["kind"]) for x in plan_of(a, s, lines(4000, product_id=2))["portions"]] == [
        (uni, "universal")]
    with read_session() as db:   # nothing held by plans
        assert [lot_balance(db, i) for i in (uni, mfr, grp, gift)] == [5000, 800, 900, 2500]
        assert db.scalar(select(OpenPayment.id)) is None


def test_a_payment_holds_its_plan_combined_and_a_short_one_is_final(mall_db):
    s, a = members2()
    with write_session() as db:
        brand(db, "acme", s, products={a: [1]}, free_cap_units=100)
        uni = give(db, s, OpenKind.UNIVERSAL, 1000)
        free = give(db, s, OpenKind.MANUFACTURER_FREE, 300, issuer="acme", paid_bp=0)
    # type 2 pays at most its cap per item, universal tokens the rest of the line
    op, answer = pay(a, s, [{"line": 1, "product_id": 1, "quantity": 2, "units": 500}])
    assert answer.status == 200, answer.body
    body = answer.body
    assert body["status"] == "authorized" and body["units"] == 500
    assert sorted((x["lot_id"], x["kind"], x["tokens"]) for x in body["portions"]) == [
        (uni, "universal", 300), (free, "manufacturer_free", 200)]
    assert body["balance_after"] == {"open:manufacturer_free:acme": 100, "open:universal": 700}
    with read_session() as db:
        assert (lot_balance(db, uni), lot_balance(db, free)) == (700, 100)
        assert balance(db, f"pending:{op}:{uni}") == 300 and balance(db, f"pending:{op}:{free}") == 200
        assert books.verify(db).ok
    # short: 402 with what is missing and which kinds would help; nothing held, and the answer is final
    op2, short = pay(a, s, lines(900, product_id=1))
    assert short.status == 402, short.body
    assert (short.body["reason"], short.body["short_units"]) == ("short", 200)
    assert short.body["helpful_kinds"] == ["manufacturer", "gift_certificate", "universal"]
    with write_session() as db:
        give(db, s, OpenKind.UNIVERSAL, 5000)
    _, again = pay(a, s, lines(900, product_id=1), op=op2)
    assert (again.status, again.body) == (402, short.body)
    with read_session() as db:
        assert db.scalar(select(OpenPayment).where(OpenPayment.operation_id == op2)) is None
        assert lot_balance(db, uni) == 700


def test_an_unknown_customer_is_short_and_a_bad_body_or_key_is_refused(mall_db):
    s, a = members2()
    op, answer = pay(a, s, lines(10))
    assert answer.status == 402 and answer.body["short_units"] == 10
    bad = open_payments.receive_payment(a, str(uuid.uuid4()), {"operation_id": str(uuid.uuid4()),
                                                               "customer": customer(s), "lines": lines(10)})
    assert bad.status == 422 and "Idempotency-Key" in bad.body["detail"]
    op = str(uuid.uuid4())
    zero = open_payments.receive_payment(a, op, {"operation_id": op, "customer": customer(s), "lines": lines(0)})
    assert zero.status == 422


def test_two_payments_racing_for_one_certificate_one_wins_and_the_books_balance(mall_db):
    s, a = members2()
    with write_session() as db:
        gift = give(db, s, OpenKind.GIFT_CERTIFICATE, 2500, issuer=s)
    answers = []
    barrier = threading.Barrier(2)

    def racer() -> None:
        barrier.wait()
        answers.append(pay(a, s, lines(2000, product_id=5)))

    threads = [threading.Thread(target=racer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(ans.status for _, ans in answers) == [200, 402]
    won = next(op for op, ans in answers if ans.status == 200)
    with read_session() as db:
        assert lot_balance(db, gift) == 0
        assert balance(db, f"pending:{won}:{gift}") == 2500     # held whole: 2000 and its change
        assert len(db.scalars(select(OpenPayment)).all()) == 1
        assert books.verify(db).ok


def test_an_expired_lot_never_pays(mall_db):
    s, a = members2()
    with write_session() as db:
        give(db, s, OpenKind.UNIVERSAL, 1000, expires_at=utcnow() - timedelta(seconds=1))
    assert pay(a, s, lines(10))[1].status == 402


# ---------------------------------------------------------------- over a real `msp serve`

def joined(msp: Msp, name: str) -> tuple[str, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    r = msp.join(join_body(msp.admin_json("invite", name)["invitation"], key, name=name), key)
    assert r.status_code == 201, r.text
    return r.json()["member_id"], key


def test_signed_plan_and_payment_over_a_real_msp(msp):
    s, _s_key = joined(msp, "Open seller")
    a, a_key = joined(msp, "Open acceptor")
    with write_session(msp.db_url) as db:
        uni = give(db, s, OpenKind.UNIVERSAL, 1200)
    body_lines = lines(1000, product_id=3)
    r = msp.signed("POST", "/v1/mall/open-plans", a_key, a, {"customer": customer(s), "lines": body_lines})
    assert r.status_code == 200, r.text
    assert r.json()["unit_value_cents"] == 1
    assert [(x["lot_id"], x["tokens"]) for x in r.json()["plan"]["portions"]] == [(uni, 1000)]
    op = str(uuid.uuid4())
    payment = {"operation_id": op, "customer": customer(s), "lines": body_lines}
    first = msp.signed("POST", "/v1/mall/open-payments", a_key, a, payment, headers={"Idempotency-Key": op})
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "authorized" and first.json()["balance_after"] == {"open:universal": 200}
    hold = datetime.fromisoformat(first.json()["hold_expires_at"])    # the default hour, in UTC
    assert hold.tzinfo is not None and timedelta(minutes=59) < hold - utcnow() <= timedelta(hours=1)
    again = msp.signed("POST", "/v1/mall/open-payments", a_key, a, payment, headers={"Idempotency-Key": op})
    assert (again.status_code, again.json()) == (200, first.json())
    other = msp.signed("POST", "/v1/mall/open-payments", a_key, a, {**payment, "lines": lines(1, product_id=3)},
                       headers={"Idempotency-Key": op})
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    short_op = str(uuid.uuid4())
    short = msp.signed("POST", "/v1/mall/open-payments", a_key, a,
                       {"operation_id": short_op, "customer": customer(s), "lines": body_lines},
                       headers={"Idempotency-Key": short_op})
    assert short.status_code == 402 and short.json()["reason"] == "short" and short.json()["short_units"] == 800
    unsigned = msp.post("/v1/mall/open-payments", json=payment, headers={"Idempotency-Key": op})
    assert unsigned.status_code == 401
    with read_session(msp.db_url) as db:
        assert balance(db, f"pending:{op}:{uni}") == 1000 and lot_balance(db, uni) == 200
        assert books.verify(db).ok


def test_signed_result_and_refund_over_a_real_msp_and_the_audit_sees_open_payments(msp_factory):
    msp = msp_factory()    # its own: `msp admin audit` asks every member, and these have no servers
    s, _ = joined(msp, "Served seller")
    a, a_key = joined(msp, "Served acceptor")
    with write_session(msp.db_url) as db:
        uni = give(db, s, OpenKind.UNIVERSAL, 700)
    ops = [str(uuid.uuid4()) for _ in range(2)]
    for op in ops:
        r = msp.signed("POST", "/v1/mall/open-payments", a_key, a,
                       {"operation_id": op, "customer": customer(s), "lines": lines(300)},
                       headers={"Idempotency-Key": op})
        assert r.status_code == 200, r.text
    done = msp.signed("POST", "/v1/mall/open-payment-results", a_key, a,
                      {"operation_id": ops[0], "status": "confirmed", "units": 300},
                      headers={"Idempotency-Key": f"{ops[0]}:result"})
    assert done.status_code == 200 and done.json()["status"] == "confirmed", done.text
    wrong_key = msp.signed("POST", "/v1/mall/open-payment-results", a_key, a,
                           {"operation_id": ops[1], "status": "voided", "units": 300},
                           headers={"Idempotency-Key": ops[1]})
    assert wrong_key.status_code == 422
    refund_id = str(uuid.uuid4())
    back = msp.signed("POST", "/v1/mall/open-refunds", a_key, a,
                      {"refund_id": refund_id, "operation_id": ops[0], "reason": "returned"},
                      headers={"Idempotency-Key": refund_id})
    assert back.status_code == 200 and back.json() == {"refund_id": refund_id, "operation_id": ops[0],
                                                       "status": "refunded", "units": 300}, back.text
    with read_session(msp.db_url) as db:
        assert lot_balance(db, uni) == 400 and balance(db, f"pending:{ops[1]}:{uni}") == 300
    with write_session(msp.db_url) as db:   # forged: the held payment marked voided, its tokens still pending
        db.execute(sa.update(OpenPayment).where(OpenPayment.operation_id == ops[1]).values(status="voided"))
    res = msp.admin("audit", check=False)
    assert res.returncode != 0
    assert f"pending:{ops[1]}:{uni} holds 300, not 0 (voided payment)" in res.stdout + res.stderr


def test_a_served_msp_voids_a_hold_nobody_ended(msp_factory):
    # a one-second hold and a scheduler round every second (msp_settlement_seconds / 10, at least 1 s)
    msp = msp_factory(env={"TOKENRENT_MSP_OPEN_PAYMENT_HOLD_SECONDS": "1", "TOKENRENT_MSP_SETTLEMENT_SECONDS": "10"})
    s, _ = joined(msp, "Idle seller")
    a, a_key = joined(msp, "Idle acceptor")
    with write_session(msp.db_url) as db:
        uni = give(db, s, OpenKind.UNIVERSAL, 100)
    op = str(uuid.uuid4())
    r = msp.signed("POST", "/v1/mall/open-payments", a_key, a,
                   {"operation_id": op, "customer": customer(s), "lines": lines(60)}, headers={"Idempotency-Key": op})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 20
    while True:
        with read_session(msp.db_url) as db:
            status = db.scalar(select(OpenPayment.status).where(OpenPayment.operation_id == op))
            if status == "voided":
                assert lot_balance(db, uni) == 100 and balance(db, f"pending:{op}:{uni}") == 0
                break
        assert time.monotonic() < deadline, f"the hold was not voided: {status}"
        time.sleep(0.2)
    late = msp.signed("POST", "/v1/mall/open-payment-results", a_key, a,
                      {"operation_id": op, "status": "confirmed", "units": 60},
                      headers={"Idempotency-Key": f"{op}:result"})
    assert late.status_code == 409 and late.json()["reason"] == "expired"
