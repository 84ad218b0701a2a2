"""Settlement (FIG 15 steps 9-10, FIG 16 clearing) in process on SQLite and
PostgreSQL: the patent's example, royalties on the statement, sub-cent
residues carried over periods (hypothesis), the books cleared by payouts,
two closers at once, the scheduler's due rule, and the member's view."""
from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from server_stub.db import read_session, write_session
from server_stub.mall import books, exchanges, members, notifications, settlement
from server_stub.mall.models import Movement, PayoutInstruction, Period, PeriodSummary, Statement
from server_stub.mall.vocabulary import MSP_ID, RoyaltyMode
from server_stub.network.money import ExchangeRefused, exchange_amounts
from server_stub.services.errors import ApiError
from tests.mall.test_notifications import AT, add_member


def exchanged(db, home: str, other: str, tokens: int) -> str:
    """A completed exchange of `tokens` of home's tokens (as the saga would leave it at the MSP)."""
    va = members.get_member(db, home).token_value_cents
    vb = members.get_member(db, other).token_value_cents
    x = exchange_amounts(tokens, va, vb)
    op = str(uuid.uuid4())
    exchanges.accept_exchange(db, home, {
        "operation_id": op, "from_member": home, "to_member": other,
        "customer": {"home_member": home, "home_user_id": "7", "full_name": "Ann"},
        "tokens_from": x.tokens_from, "tokens_to": x.tokens_to, "value_from_cents": va, "value_to_cents": vb,
        "value_cents": x.value_cents, "quote_expires_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat()})
    exchanges.complete(db, op)
    return op


def closed(db) -> Period:
    period = settlement.close_period(db)
    assert period is not None
    return period


def lines(db, period_id: int) -> dict[str, dict]:
    return {row["member_id"]: row for row in settlement.statements(db, period_id=period_id, with_msp=True)}


def position(db, member_id: str) -> int:
    acct = books.find_account(db, f"member:{member_id}:position")
    return int(acct.balance) if acct else 0


def test_the_patents_example_a_owes_b_ten_dollars_less_the_fees_of_as_schedule(mall_db):
    with write_session() as db:
        a = add_member(db, "Mall A", 10, service_charge_bp=200, royalty_bp=100)
        b = add_member(db, "Mall B", 5)
        exchanged(db, a, b, 100)          # 100 Token-A -> 200 Token-B: $10.00
    with write_session() as db:
        period = closed(db)
        rows = lines(db, period.id)
    # A keeps its 2 % service charge, the MSP its 1 %: A pays $9.80, B is owed $9.70, the MSP keeps $0.10
    assert (rows[a]["owing_cents"], rows[a]["net_cents"], rows[a]["rounding_gain_cents"]) == (1000, -980, 0)
    assert (rows[b]["owed_cents"], rows[b]["net_cents"], rows[b]["fees_cents"]) == (1000, 970, 30)
    assert rows[MSP_ID]["net_cents"] == 10
    assert sum(r["net_cents"] for r in rows.values()) == 0
    assert (rows[a]["payout_direction"], rows[a]["payout_cents"]) == ("debit", 980)
    assert (rows[b]["payout_direction"], rows[b]["payout_cents"]) == ("pay", 970)
    with read_session() as db:   # the positions hold the nets until the bank has the instructions
        assert (position(db, a), position(db, b)) == (-980, 970)
    with write_session() as db:
        sent = settlement.send_payouts(db)
        assert sorted((p.member_id, p.direction, p.cents) for p in sent) == sorted(
            [(a, "debit", 980), (b, "pay", 970)])
        assert settlement.send_payouts(db) == []      # each instruction once
    with read_session() as db:
        assert (position(db, a), position(db, b)) == (0, 0)
        assert books.find_account(db, notifications.EARNINGS_ACCOUNT).balance == 10
        assert books.verify(db).ok
        refs = db.scalars(select(PayoutInstruction.bank_reference)).all()
        assert all(r and r.startswith("sim-") for r in refs)


def test_the_rounding_gain_stays_with_the_member_whose_tokens_left(mall_db):
    with write_session() as db:
        a = add_member(db, "Seven", 7)
        b = add_member(db, "Three", 3)
        exchanged(db, a, b, 10)     # 70 cents buy 23 Token-B (69 cents); 10 Token-A move, 1 cent of gain
    with write_session() as db:
        rows = lines(db, closed(db).id)
    assert (rows[a]["owing_cents"], rows[a]["rounding_gain_cents"], rows[a]["net_cents"]) == (69, 1, -69)
    assert rows[b]["net_cents"] == 69


def test_royalties_invoiced_and_from_the_deposit_reach_the_statement(mall_db):
    with write_session() as db:
        inv = add_member(db, "Invoiced", 10, royalty_bp=250)
        dep = add_member(db, "Deposit", 10, royalty_bp=250, mode=RoyaltyMode.DEPOSIT)
        notifications.record_deposit(db, dep, 10)
        notifications.record_notice(db, inv, "sale:1", {"event": "sale", "tokens": 10, "cents": 1001, "at": AT})
        notifications.record_notice(db, dep, "sale:1", {"event": "sale", "tokens": 10, "cents": 1001, "at": AT})
    with write_session() as db:
        rows = lines(db, closed(db).id)
    # 1001 x 2.5 % = 25.025 cents = 2502 units; the deposit paid 10 cents of it at once
    assert rows[inv]["details"]["royalty_micro_cents"] == 2502
    assert (rows[inv]["royalties_cents"], rows[inv]["net_cents"], rows[inv]["residue_micro_cents"]) == (25, -25, -2)
    assert rows[dep]["details"]["royalty_paid_from_deposit_cents"] == 10
    assert (rows[dep]["royalties_cents"], rows[dep]["net_cents"], rows[dep]["residue_micro_cents"]) == (15, -15, -2)
    assert rows[MSP_ID]["net_cents"] == 40 and rows[MSP_ID]["residue_micro_cents"] == 4
    with write_session() as db:
        settlement.send_payouts(db)
    with read_session() as db:
        assert books.find_account(db, notifications.EARNINGS_ACCOUNT).balance == 10 + 40
        assert books.verify(db).ok


schedules = st.tuples(st.integers(1, 40), st.integers(0, 777), st.integers(0, 333), st.integers(0, 3))


@settings(max_examples=5, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate),
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(schedules, min_size=3, max_size=3),
       periods=st.lists(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(1, 500)),
                                 min_size=1, max_size=4), min_size=3, max_size=3))
# an exchange the rule refuses (2 tokens of 2 cents buy no 39-cent token) moves nothing
@example(values=[(2, 0, 0, 0), (39, 0, 0, 0), (5, 0, 0, 0)], periods=[[(0, 1, 2)], [(0, 2, 5)], [(1, 0, 1)]])
def test_over_three_periods_each_sums_to_zero_and_the_residue_carries(mall_db, values, periods):
    with write_session() as db:
        ids = [add_member(db, f"P{i}", v, service_charge_bp=s, royalty_bp=r, fixed_fee_cents=f)
               for i, (v, s, r, f) in enumerate(values)]
    accrued: dict[str, int] = dict.fromkeys([*ids, MSP_ID], 0)
    paid: dict[str, int] = dict.fromkeys([*ids, MSP_ID], 0)
    carried: dict[str, int] = dict.fromkeys([*ids, MSP_ID], 0)
    with read_session() as db:   # the MSP's line is shared by the examples on one database
        carried[MSP_ID] = settlement._msp_carried_in(db)
        accrued[MSP_ID] = carried[MSP_ID]
    for moves in periods:
        with write_session() as db:
            for home, other, tokens in moves:
                if home == other:
                    continue
                try:
                    exchanged(db, ids[home], ids[other], tokens)
                except (ApiError, ExchangeRefused):   # buys no whole token of the other: refused, nothing moved
                    pass
        with write_session() as db:
            period = closed(db)
            rows = lines(db, period.id)
            settlement.send_payouts(db, period.id)
        assert sum(r["net_cents"] for r in rows.values()) == 0
        for member in accrued:
            row = rows[member]
            assert row["carried_in_micro_cents"] == carried[member]
            if member != MSP_ID:   # the MSP's residue is the opposite of the members' together
                assert abs(row["residue_micro_cents"]) < 100
            accrued[member] += row["details"]["position_micro_cents"]
            paid[member] += row["net_cents"]
            carried[member] = row["residue_micro_cents"]
    # nothing lost, nothing created: every unit is paid or carried
    for member in accrued:
        assert paid[member] * 100 + carried[member] == accrued[member], member
    with read_session() as db:
        assert all(position(db, m) == 0 for m in ids)
        assert books.verify(db).ok


def test_two_closers_at_once_close_the_period_once(mall_db):
    with write_session() as db:
        a = add_member(db, "One", 10)
        b = add_member(db, "Two", 5)
        exchanged(db, a, b, 30)
    results: list[object] = []
    barrier = threading.Barrier(2)

    def close() -> None:
        barrier.wait()
        with write_session() as db:
            p = settlement.close_period(db)
            results.append(p.id if p else None)

    threads = [threading.Thread(target=close) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    with read_session() as db:
        statements = db.scalars(select(Statement).where(Statement.member_id == a)).all()
        assert sum(s.owing_cents for s in statements) == 300      # counted in exactly one period
        assert db.scalar(select(func.count()).select_from(Period).where(Period.status == "open")) == 1
        assert db.scalar(select(func.count()).select_from(PayoutInstruction)) == 2
    assert len([r for r in results if r is not None]) >= 1


def test_the_scheduler_closes_only_a_due_period(mall_db):
    with write_session() as db:
        add_member(db, "Clock", 10)
        start = settlement.open_period(db).starts_at
    with write_session() as db:
        assert settlement.close_period(db, start + timedelta(seconds=86399), only_if_due=True) is None
    with write_session() as db:
        p = settlement.close_period(db, start + timedelta(seconds=86400), only_if_due=True)
        assert p is not None and p.ends_at == start + timedelta(seconds=86400)
    with read_session() as db:
        assert db.get(PeriodSummary, p.id).members_net_cents == 0


def test_a_member_reads_only_its_own_statements_as_json_and_csv(mall_db):
    with write_session() as db:
        a = add_member(db, "Reader A", 10)
        b = add_member(db, "Reader B", 5)
        exchanged(db, a, b, 10)
        closed(db)
    with read_session() as db:
        mine = settlement.statements(db, member_id=a)
        assert [s["member_id"] for s in mine] == [a] and mine[0]["net_cents"] == -100
        theirs = settlement.statements(db, member_id=b)[0]["id"]
        with pytest.raises(ApiError) as e:
            settlement.member_statement(db, a, theirs)
        assert e.value.status_code == 404
        text = settlement.as_csv(mine)
    header, row = text.splitlines()
    assert header.startswith("id,period_id,member_id") and f",{a}," in row and ",-100," in row
    with read_session() as db:
        assert db.scalar(select(func.count()).select_from(Movement)) >= 1
