"""An open payment's end at the MSP (docs/mall.md "Holds, results and refunds",
"The cash side of open tokens") in process on SQLite and PostgreSQL: the
patent's example on the period's statements, a certificate's change made once,
voids and expired holds, refunds (an expired lot revived, spent change refused),
and the MSP's audit of open payments catching a forged record."""
from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import select

from server_stub.db import read_session, write_session
from server_stub.mall import audit, books, open_lots, open_payments, settlement
from server_stub.mall.models import FeeRecord, Movement, OpenLot, OpenPayment
from server_stub.mall.vocabulary import MSP_ID
from server_stub.models.base import utcnow
from server_stub.network.open_money import OpenKind
from tests.mall.test_notifications import add_member
from tests.mall.test_open_payments import balance, brand, give, group, lines, lot_balance, pay
from tests.mall.test_settlement import closed


def result(member: str, op: str, status: str, units: int):
    return open_payments.receive_result(member, f"{op}:result",
                                        {"operation_id": op, "status": status, "units": units})


def refund(member: str, op: str, refund_id: str | None = None):
    refund_id = refund_id or str(uuid.uuid4())
    return open_payments.receive_refund(member, refund_id, {"refund_id": refund_id, "operation_id": op,
                                                            "reason": "returned"})


def statement_lines(period_id: int) -> dict[str, dict]:
    with read_session() as db:
        return {r["member_id"]: r for r in settlement.statements(db, period_id=period_id, with_msp=True)}


def authorized(member: str, home: str, units: int, product_id: int = 9) -> str:
    op, answer = pay(member, home, lines(units, product_id=product_id))
    assert answer.status == 200, answer.body
    return op


def test_the_patents_example_100_dollars_of_s_spent_at_a_s_pays_98_a_gets_97_the_msp_1(mall_db):
    with write_session() as db:
        s = add_member(db, "Seller S", 10, service_charge_bp=200, royalty_bp=100)
        a = add_member(db, "Acceptor A", 10)
        uni = give(db, s, OpenKind.UNIVERSAL, 10000)      # $100 of universal tokens sold by S
    op = authorized(a, s, 10000)
    done = result(a, op, "confirmed", 10000)
    assert done.status == 200 and done.body["status"] == "confirmed", done.body
    assert result(a, op, "confirmed", 10000).body == done.body      # the first answer, again
    with read_session() as db:
        assert lot_balance(db, uni) == 0 and balance(db, f"pending:{op}:{uni}") == 0
        assert balance(db, f"accepted:{a}:open:universal") == 10000
        [mv] = db.scalars(select(Movement).where(Movement.from_member == s)).all()
        assert (mv.kind, mv.to_member, mv.value_cents, mv.value_micro_cents, mv.status) == (
            "open_payment", a, 10000, 1_000_000, "completed")
        fees = {f.kind: f.amount_micro_cents for f in db.scalars(select(FeeRecord)
                                                                 .where(FeeRecord.operation_id == mv.operation_id))}
        assert fees == {"service_charge": 20000, "royalty": 10000}
        assert books.verify(db).ok
    with write_session() as db:
        period = closed(db)
    rows = statement_lines(period.id)
    assert (rows[s]["owing_cents"], rows[s]["net_cents"]) == (10000, -9800)
    assert (rows[a]["owed_cents"], rows[a]["net_cents"], rows[a]["fees_cents"]) == (10000, 9700, 300)
    assert rows[MSP_ID]["net_cents"] == 100
    with read_session() as db:
        assert books.verify(db).ok


def test_type_1_tokens_cost_the_seller_what_it_was_paid_and_the_brand_the_discount(mall_db):
    with write_session() as db:
        s = add_member(db, "Reseller", 10)
        b = add_member(db, "Brand owner", 10)
        a = add_member(db, "Shop", 10)
        brand(db, "acme", b, products={a: [9]})
        give(db, s, OpenKind.MANUFACTURER, 1000, issuer="acme", paid_bp=9000, seller=s)   # sold at 10 % off
    op = authorized(a, s, 1000)
    assert result(a, op, "confirmed", 1000).status == 200
    with write_session() as db:
        period = closed(db)
    rows = statement_lines(period.id)
    assert (rows[s]["net_cents"], rows[b]["net_cents"], rows[a]["net_cents"]) == (-900, -100, 1000)


def test_a_certificates_change_is_a_universal_lot_made_once_and_a_void_gives_every_lot_back(mall_db):
    with write_session() as db:
        s = add_member(db, "Card seller", 10)
        a = add_member(db, "Card shop", 10)
        gift = give(db, s, OpenKind.GIFT_CERTIFICATE, 2500, issuer=s)
        uni = give(db, s, OpenKind.UNIVERSAL, 300)
    # voided: every held token back where it came from
    op = authorized(a, s, 2800)
    with read_session() as db:
        assert (lot_balance(db, gift), lot_balance(db, uni)) == (0, 0)
    assert result(a, op, "voided", 2800).body["status"] == "voided"
    with read_session() as db:
        assert (lot_balance(db, gift), lot_balance(db, uni)) == (2500, 300)
        assert balance(db, f"pending:{op}:{gift}") == 0
    confirm_late = open_payments.receive_result(a, f"{op}:result", {"operation_id": op, "status": "confirmed",
                                                                    "units": 2800})
    assert confirm_late.status == 422   # the key's first result stays its only one
    # confirmed: $10 of the $25 certificate spent, $15 back as universal tokens, once
    wrong_op = authorized(a, s, 1000)
    wrong = result(a, wrong_op, "confirmed", 999)
    assert wrong.status == 409 and wrong.body["reason"] == "units_mismatch"
    with read_session() as db:
        assert balance(db, f"pending:{wrong_op}:{gift}") == 2500       # nothing moved
    assert result(a, wrong_op, "confirmed", 1000).status == 422   # final for its key: the hold runs out
    with write_session() as db:
        assert open_payments.expire_holds(db, utcnow() + timedelta(hours=2)) == 1
    op2 = authorized(a, s, 1000)
    done = result(a, op2, "confirmed", 1000)
    assert done.status == 200, done.body
    [change_lot] = done.body["change_lots"]
    assert done.body["balance_after"] == {"open:universal": 1800}
    with write_session() as db:   # the service again (another message): the same lot, nothing twice
        assert open_payments.apply_result(db, a, {"operation_id": op2, "status": "confirmed", "units": 1000},
                                          f"{op2}:result")["change_lots"] == [change_lot]
    with read_session() as db:
        lot = db.get(OpenLot, change_lot)
        assert (lot.kind, lot.seller_member_id, lot.paid_bp, lot.origin) == (
            "universal", s, 10000, f"change:{op2}:{gift}")
        assert lot_balance(db, change_lot) == 1500 and lot_balance(db, gift) == 0
        assert balance(db, f"issue:open:gift_certificate:{s}:{s}") == -1000     # the rest left circulation
        assert balance(db, f"issue:open:universal:{s}") == -1800
        assert books.verify(db).ok


def test_a_hold_past_its_time_is_voided_and_a_late_confirm_answers_expired(mall_db):
    with write_session() as db:
        s = add_member(db, "Slow seller", 10)
        a = add_member(db, "Slow shop", 10)
        uni = give(db, s, OpenKind.UNIVERSAL, 500)
    op = authorized(a, s, 400)
    op_kept = authorized(a, s, 100)
    with write_session() as db:   # the hold of `op` ran out
        db.execute(sa.update(OpenPayment).where(OpenPayment.operation_id == op)
                   .values(hold_expires_at=utcnow() - timedelta(seconds=1)))
    with write_session() as db:
        assert open_payments.expire_holds(db) == 1
        assert open_payments.expire_holds(db) == 0
    late = result(a, op, "confirmed", 400)
    assert late.status == 409 and late.body["reason"] == "expired"
    with read_session() as db:
        assert lot_balance(db, uni) == 400 and balance(db, f"pending:{op}:{uni}") == 0
    # the result itself voids an expired hold the worker has not reached yet
    with write_session() as db:
        db.execute(sa.update(OpenPayment).where(OpenPayment.operation_id == op_kept)
                   .values(hold_expires_at=utcnow() - timedelta(seconds=1)))
    assert result(a, op_kept, "confirmed", 100).body["reason"] == "expired"
    with read_session() as db:
        assert lot_balance(db, uni) == 500
        assert db.scalar(select(OpenPayment.reason).where(OpenPayment.operation_id == op_kept)) == "expired"
        assert books.verify(db).ok
    scheduler = settlement.Scheduler()   # and the scheduler's round runs the expiry
    op3 = authorized(a, s, 50)
    with write_session() as db:
        db.execute(sa.update(OpenPayment).where(OpenPayment.operation_id == op3)
                   .values(hold_expires_at=utcnow() - timedelta(seconds=1)))
    scheduler.run_once()
    with read_session() as db:
        assert db.scalar(select(OpenPayment.status).where(OpenPayment.operation_id == op3)) == "voided"


def test_a_refund_gives_each_lot_back_revives_an_expired_one_and_reverses_the_cash(mall_db):
    with write_session() as db:
        s = add_member(db, "Refund seller", 10, service_charge_bp=200, royalty_bp=100)
        a = add_member(db, "Refund shop", 10)
        soon = give(db, s, OpenKind.UNIVERSAL, 600, expires_at=utcnow() + timedelta(minutes=5))
        later = give(db, s, OpenKind.UNIVERSAL, 1000)
    op = authorized(a, s, 1000)
    assert result(a, op, "confirmed", 1000).status == 200
    with write_session() as db:   # the first lot expires meanwhile
        db.execute(sa.update(OpenLot).where(OpenLot.id == soon).values(expires_at=utcnow() - timedelta(days=1)))
    refund_id = str(uuid.uuid4())
    first = refund(a, op, refund_id)
    assert first.status == 200 and first.body["status"] == "refunded", first.body
    assert refund(a, op, refund_id).body == first.body
    twice = refund(a, op)
    assert twice.status == 409 and twice.body["reason"] == "already_refunded"
    with read_session() as db:
        assert (lot_balance(db, soon), lot_balance(db, later)) == (600, 1000)
        revived = db.get(OpenLot, soon).expires_at
        assert timedelta(days=29) < revived - utcnow() <= timedelta(days=30)
        assert balance(db, f"accepted:{a}:open:universal") == 0
        kinds = sorted(mv.kind for mv in db.scalars(select(Movement).where(Movement.from_member == s)))
        assert kinds == ["open_payment", "open_refund"]
        assert books.verify(db).ok
    with write_session() as db:   # payment and refund in one period: nobody owes anything
        period = closed(db)
    rows = statement_lines(period.id)
    assert (rows[s]["net_cents"], rows[a]["net_cents"], rows[MSP_ID]["net_cents"]) == (0, 0, 0)
    assert rows[s]["owing_cents"] == rows[s]["owed_cents"] == 1000
    # a voided payment is no refund's
    op2 = authorized(a, s, 10)
    assert result(a, op2, "voided", 10).status == 200
    assert refund(a, op2).body["reason"] == "not_confirmed"


def test_a_refund_across_periods_reverses_the_payment_on_the_next_statement(mall_db):
    with write_session() as db:
        s = add_member(db, "Period seller", 10, service_charge_bp=200, royalty_bp=100)
        a = add_member(db, "Period shop", 10)
        give(db, s, OpenKind.UNIVERSAL, 10000)
    op = authorized(a, s, 10000)
    assert result(a, op, "confirmed", 10000).status == 200
    with write_session() as db:
        first = closed(db)
    assert refund(a, op).status == 200
    with write_session() as db:
        second = closed(db)
    one, two = statement_lines(first.id), statement_lines(second.id)
    assert (one[s]["net_cents"], one[a]["net_cents"], one[MSP_ID]["net_cents"]) == (-9800, 9700, 100)
    assert (two[s]["net_cents"], two[a]["net_cents"], two[MSP_ID]["net_cents"]) == (9800, -9700, -100)
    with read_session() as db:
        assert books.verify(db).ok


def test_spent_change_refuses_the_refund_and_nothing_moves(mall_db):
    with write_session() as db:
        s = add_member(db, "Change seller", 10)
        a = add_member(db, "Change shop", 10)
        gift = give(db, s, OpenKind.GIFT_CERTIFICATE, 2500, issuer=s)
    op = authorized(a, s, 1000)
    change_lot = result(a, op, "confirmed", 1000).body["change_lots"][0]
    spend = authorized(a, s, 100)           # the change pays something else
    assert result(a, spend, "confirmed", 100).status == 200
    refused = refund(a, op)
    assert refused.status == 409 and refused.body["reason"] == "change_spent"
    with read_session() as db:
        assert (lot_balance(db, gift), lot_balance(db, change_lot)) == (0, 1400)
        assert db.scalar(select(OpenPayment.status).where(OpenPayment.operation_id == op)) == "confirmed"
    # refunding the later payment first makes the change whole again: then the first refund goes
    assert refund(a, spend).status == 200
    assert refund(a, op).status == 200
    with read_session() as db:
        assert (lot_balance(db, gift), lot_balance(db, change_lot)) == (2500, 0)
        assert books.verify(db).ok
        assert audit.open_problems(db) == []


def test_only_the_accepting_member_ends_a_payment(mall_db):
    with write_session() as db:
        s = add_member(db, "Owner seller", 10)
        a = add_member(db, "Owner shop", 10)
        give(db, s, OpenKind.UNIVERSAL, 100)
    op = authorized(a, s, 100)
    assert result(s, op, "confirmed", 100).status == 403
    assert result(a, str(uuid.uuid4()), "confirmed", 100).status == 404


def test_the_open_audit_passes_and_catches_forged_records(mall_db):
    with write_session() as db:
        s = add_member(db, "Audit seller", 10)
        a = add_member(db, "Audit shop", 10)
        give(db, s, OpenKind.GIFT_CERTIFICATE, 2500, issuer=s)
        give(db, s, OpenKind.UNIVERSAL, 500)
    held = authorized(a, s, 100, product_id=1)       # the certificate alone, held whole
    confirmed_op = authorized(a, s, 300)
    assert result(a, confirmed_op, "confirmed", 300).status == 200
    with read_session() as db:
        assert audit.open_problems(db) == []
        assert audit.open_problems(db, utcnow() + timedelta(hours=2)) == [
            f"open payment {held} is still held past its hold (+ grace)"]
    with write_session() as db:   # forged: a held payment marked voided while its tokens stay pending
        db.execute(sa.update(OpenPayment).where(OpenPayment.operation_id == held).values(status="voided"))
    with read_session() as db:
        problems = audit.open_problems(db)
    assert any(f"pending:{held}:" in p and "voided" in p for p in problems), problems
    with write_session() as db:   # forged: a second change lot for the confirmed payment's certificate
        cust = db.scalar(select(OpenPayment.customer_id).where(OpenPayment.operation_id == confirmed_op))
        open_lots.issue_lot(db, open_lots.LotTerms(
            customer_id=cust, kind=OpenKind.UNIVERSAL, issuer=None, tokens=5, seller_member_id=s, paid_bp=10000,
            expires_at=None, origin=f"change:{confirmed_op}:999"))
    with read_session() as db:
        problems = audit.open_problems(db)
    assert f"change lot change:{confirmed_op}:999 belongs to no confirmed payment's change" in problems


def test_sub_cent_values_settle_exactly_and_the_residue_carries(mall_db):
    with write_session() as db:
        s = add_member(db, "Group seller", 10)
        a = add_member(db, "Group shop", 10)
        group(db, "east", s, a)
        give(db, s, OpenKind.GROUP, 7, issuer="east", paid_bp=9333)     # sold at 6.67 % off
        give(db, a, OpenKind.UNIVERSAL, 50, seller=a)                   # A's own tokens, spent at A
    op = authorized(a, s, 7)
    assert result(a, op, "confirmed", 7).status == 200
    with read_session() as db:   # 7 tokens x 1 cent x 93.33 % = 6.5331 cents: 6 posted, the rest on the statement
        [mv] = db.scalars(select(Movement).where(Movement.from_member == s)).all()
        assert (mv.value_cents, mv.value_micro_cents) == (6, 653)
        assert balance(db, f"member:{a}:position") == 6
    own_op, own_answer = pay(a, a, lines(50))
    assert own_answer.status == 200
    assert result(a, own_op, "confirmed", 50).status == 200
    with read_session() as db:   # a member's own tokens spent in its own store owe nobody anything
        assert db.scalars(select(Movement).where(Movement.from_member == a)).all() == []
    with write_session() as db:
        period = closed(db)
    rows = statement_lines(period.id)
    assert (rows[s]["net_cents"], rows[s]["residue_micro_cents"]) == (-6, -53)
    assert (rows[a]["net_cents"], rows[a]["residue_micro_cents"]) == (6, 53)
    assert rows[MSP_ID]["net_cents"] == 0
    with read_session() as db:
        assert books.verify(db).ok


def test_random_payments_results_and_refunds_keep_the_books_and_the_audit_whole(mall_db):
    import random

    rng = random.Random(12)
    with write_session() as db:
        s = add_member(db, "Random seller", 10, service_charge_bp=150, royalty_bp=75, fixed_fee_cents=1)
        b = add_member(db, "Random brand", 10)
        a = add_member(db, "Random shop", 10)
        brand(db, "rnd", b, products={a: [1]}, free_cap_units=40)
        group(db, "west", s, a)
        for _ in range(3):
            give(db, s, OpenKind.UNIVERSAL, rng.randint(100, 900))
            give(db, s, OpenKind.GIFT_CERTIFICATE, rng.randint(200, 900), issuer=s)
            give(db, s, OpenKind.MANUFACTURER, rng.randint(50, 300), issuer="rnd", paid_bp=8000)
            give(db, s, OpenKind.MANUFACTURER_FREE, rng.randint(10, 80), issuer="rnd", paid_bp=0)
            give(db, s, OpenKind.GROUP, rng.randint(50, 300), issuer="west", paid_bp=9500)
    held: list[tuple[str, int]] = []
    confirmed: list[str] = []
    statuses = {200: 0, 402: 0, 409: 0}
    for _ in range(40):
        action = rng.choice(["pay", "pay", "confirm", "void", "refund"])
        if action == "pay":
            body = [{"line": i + 1, "product_id": rng.choice([1, 2]), "quantity": rng.randint(1, 3),
                     "units": rng.randint(1, 400)} for i in range(rng.randint(1, 3))]
            op, answer = pay(a, s, body)
            statuses[answer.status] += 1
            if answer.status == 200:
                held.append((op, answer.body["units"]))
        elif action in ("confirm", "void") and held:
            op, units = held.pop(rng.randrange(len(held)))
            answer = result(a, op, "confirmed" if action == "confirm" else "voided", units)
            assert answer.status == 200, answer.body
            if action == "confirm":
                confirmed.append(op)
        elif action == "refund" and confirmed:
            answer = refund(a, confirmed.pop(rng.randrange(len(confirmed))))
            statuses[answer.status] += 1
            assert answer.status in (200, 409), answer.body
            assert answer.status == 200 or answer.body["reason"] == "change_spent"
        with read_session() as db:
            assert books.verify(db).ok
            assert audit.open_problems(db) == []
    assert statuses[200] >= 10      # the run did pay, and not only refuse
    with write_session() as db:
        period = closed(db)
    rows = statement_lines(period.id)
    assert sum(r["net_cents"] for r in rows.values()) == 0
    with read_session() as db:
        assert books.verify(db).ok


def test_results_racing_each_other_and_the_expiry_end_a_payment_once(mall_db):
    import threading

    with write_session() as db:
        s = add_member(db, "Race seller", 10)
        a = add_member(db, "Race shop", 10)
        give(db, s, OpenKind.GIFT_CERTIFICATE, 900, issuer=s)
        give(db, s, OpenKind.UNIVERSAL, 900)
    twice = authorized(a, s, 500)                  # the certificate, its change 400
    raced = authorized(a, s, 300)                  # universal
    with write_session() as db:   # `raced` expires now: the worker and a confirm meet
        db.execute(sa.update(OpenPayment).where(OpenPayment.operation_id == raced)
                   .values(hold_expires_at=utcnow() + timedelta(milliseconds=50)))
    answers: dict[str, list] = {"twice": [], "raced": [], "expired": []}
    barrier = threading.Barrier(4)

    def run(name: str, fn) -> None:
        barrier.wait()
        answers[name].append(fn())

    def expire() -> int:
        import time

        time.sleep(0.05)
        with write_session() as db:
            return open_payments.expire_holds(db)

    threads = [threading.Thread(target=run, args=("twice", lambda: result(a, twice, "confirmed", 500))),
               threading.Thread(target=run, args=("twice", lambda: result(a, twice, "confirmed", 500))),
               threading.Thread(target=run, args=("raced", lambda: result(a, raced, "confirmed", 300))),
               threading.Thread(target=run, args=("expired", expire))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    [first, second] = answers["twice"]
    assert first.status == second.status == 200 and first.body == second.body
    [race] = answers["raced"]
    with read_session() as db:
        change = db.scalars(select(OpenLot).where(OpenLot.origin.like(f"change:{twice}:%"))).all()
        assert [lot_balance(db, lot.id) for lot in change] == [400]
        status = db.scalar(select(OpenPayment.status).where(OpenPayment.operation_id == raced))
        movements = db.scalars(select(Movement)).all()
        assert status == ("confirmed" if race.status == 200 else "voided"), (race.status, race.body)
        assert race.status == 200 or race.body["reason"] == "expired"
        assert len(movements) == (2 if status == "confirmed" else 1)
        assert books.verify(db).ok and audit.open_problems(db) == []
