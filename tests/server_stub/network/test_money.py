"""The network's money rules (server_stub/network/money.py): DESIGN.md's
formulas, the patent's example numbers, and exactness under random inputs."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server_stub.network.money import (
    UNITS_PER_CENT,
    ExchangeRefused,
    FeeSchedule,
    exchange_amounts,
    round_positions,
    split_value,
)


def test_patent_example_100_a_tokens_become_200_b_tokens():
    # NETWORK-NOTES item 3 (inferred): Token-A $0.10, Token-B $0.05
    x = exchange_amounts(100, 10, 5)
    assert (x.tokens_from, x.tokens_to, x.value_cents, x.rounding_gain_cents) == (100, 200, 1000, 0)


def test_only_the_tokens_that_buy_whole_tokens_move():
    # 7 tokens of 5 cents -> 35 cents -> 3 tokens of 10 cents (30 cents); 6 tokens move, 1 stays
    x = exchange_amounts(7, 5, 10)
    assert (x.tokens_to, x.tokens_from, x.value_cents, x.rounding_gain_cents) == (3, 6, 30, 0)
    # 10 tokens of 7 cents -> 70 cents -> 3 tokens of 20 cents (60): N' = ceil(60/7) = 9, gain 3 cents
    x = exchange_amounts(10, 7, 20)
    assert (x.tokens_to, x.tokens_from, x.value_cents, x.rounding_gain_cents) == (3, 9, 60, 3)


@pytest.mark.parametrize("tokens, va, vb", [(0, 10, 5), (-1, 10, 5), (1, 5, 10), (3, 0, 5), (3, 5, 0)])
def test_exchanges_that_buy_nothing_are_refused(tokens, va, vb):
    with pytest.raises(ExchangeRefused):
        exchange_amounts(tokens, va, vb)


@given(st.integers(1, 10**9), st.integers(1, 10**6), st.integers(1, 10**6))
def test_exchange_never_creates_value(tokens, va, vb):
    try:
        x = exchange_amounts(tokens, va, vb)
    except ExchangeRefused:
        assert tokens * va < vb
        return
    assert 1 <= x.tokens_from <= tokens
    assert x.value_cents == x.tokens_to * vb
    # the moved Token-A pay for the Token-B, and one Token-A fewer would not
    assert x.tokens_from * va >= x.value_cents > (x.tokens_from - 1) * va
    assert 0 <= x.rounding_gain_cents < va
    # M is the most whole Token-B the asked tokens buy
    assert (x.tokens_to + 1) * vb > tokens * va


def test_patent_split_example_100_dollars_2_percent_1_percent():
    # NETWORK-NOTES item 7 (inferred): A debited $98, B gets $97, the MSP keeps $1
    s = split_value(10_000, FeeSchedule(service_charge_bp=200, royalty_bp=100))
    assert s.payer_units == -9_800 * UNITS_PER_CENT
    assert s.receiver_units == 9_700 * UNITS_PER_CENT
    assert s.msp_units == 100 * UNITS_PER_CENT


def test_fixed_fee_never_exceeds_what_is_left():
    s = split_value(3, FeeSchedule(royalty_bp=100, fixed_fee_cents=5))
    assert s.receiver_units == 0 and s.msp_units == 300 and s.payer_units == -300


@pytest.mark.parametrize("kw", [{"service_charge_bp": -1}, {"royalty_bp": 10_001}, {"fixed_fee_cents": -1},
                                {"service_charge_bp": 6_000, "royalty_bp": 4_001}])
def test_bad_schedules_are_refused(kw):
    with pytest.raises(ValueError):
        FeeSchedule(**kw)


@given(st.integers(0, 10**10), st.integers(0, 10_000), st.integers(0, 10_000), st.integers(0, 10**4))
def test_split_sums_to_zero_and_no_share_is_negative(value, sc, roy, fixed):
    if sc + roy > 10_000:
        roy = 10_000 - sc
    s = split_value(value, FeeSchedule(sc, roy, fixed))
    assert s.payer_units + s.msp_units + s.receiver_units == 0
    assert s.receiver_units >= 0 and s.msp_units >= 0 and s.payer_units <= 0
    assert s.msp_units == s.royalty_units + s.fixed_fee_units
    assert -s.payer_units + s.service_charge_units == value * UNITS_PER_CENT


@given(st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from("abcd"), st.integers(0, 10**6),
                          st.integers(0, 300), st.integers(0, 300)), max_size=30),
       st.integers(1, 4))
def test_periods_round_to_cents_that_sum_to_zero_and_carry_the_rest(ops, periods):
    carried: dict[str, int] = {}
    exact_total: dict[str, int] = {}
    paid_total: dict[str, int] = {}
    for _ in range(periods):
        units: dict[str, int] = {}
        for payer, receiver, value, sc, roy in ops:
            if payer == receiver:
                continue
            for party, u in split_value(value, FeeSchedule(sc, roy)).positions(payer, receiver).items():
                units[party] = units.get(party, 0) + u
                exact_total[party] = exact_total.get(party, 0) + u
        lines = round_positions(units, carried)
        assert sum(line.net_cents for line in lines.values()) == 0
        for party, line in lines.items():
            if party != "msp":
                assert abs(line.carried_units) < UNITS_PER_CENT
            paid_total[party] = paid_total.get(party, 0) + line.net_cents * UNITS_PER_CENT
        carried = {p: line.carried_units for p, line in lines.items()}
    # nothing lost over the periods: what was paid plus what is carried is exactly what accrued
    for party in set(exact_total) | set(paid_total):
        assert paid_total.get(party, 0) + carried.get(party, 0) == exact_total.get(party, 0)


def test_positions_that_do_not_sum_to_zero_are_refused():
    with pytest.raises(ValueError):
        round_positions({"a": 5, "b": -4}, {})
