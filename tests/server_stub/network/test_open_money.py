"""The open tokens' rules (server_stub/network/open_money.py): FIG 20A/B's
choice of kinds, prices, codes and who owes whom (FIG 18 step 7, claim 8)."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server_stub.network.money import FeeSchedule, split_units
from server_stub.network.open_money import (
    CashLine, Context, Line, Lot, OpenKind, OpenMoneyError, asset_name, gift_code, gift_code_digest,
    kinds_for_product, parse_asset, plan_payment, portion_cash, sale_price_cents, units_for_cents,
)

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
U, M, F, G, C = (OpenKind.UNIVERSAL, OpenKind.MANUFACTURER, OpenKind.MANUFACTURER_FREE, OpenKind.GROUP,
                 OpenKind.GIFT_CERTIFICATE)


def ctx(groups=(), caps=None) -> Context:
    return Context("m-b", frozenset(groups), caps or {}, NOW)


# ---------------------------------------------------------------- names, prices, codes

def test_asset_names_round_trip_and_refuse_bad_issuers():
    assert asset_name(U, None) == "open:universal"
    assert asset_name(M, "acme") == "open:manufacturer:acme"
    assert parse_asset("open:group:north") == (G, "north")
    assert parse_asset("open:universal") == (U, None)
    for bad in [(U, "x"), (M, None), (G, ""), (C, "a:b")]:
        with pytest.raises(OpenMoneyError):
            asset_name(*bad)
    for bad in ["token:m-a", "open:weird:x", "open:universal:x", "open:group"]:
        with pytest.raises(OpenMoneyError):
            parse_asset(bad)


def test_prices_round_in_the_sellers_favour():
    assert units_for_cents(580, 1) == 580
    assert units_for_cents(581, 2) == 291
    assert sale_price_cents(1000, 1) == 1000
    assert sale_price_cents(1000, 1, 1000) == 900          # 10 % off
    assert sale_price_cents(333, 1, 1000) == 300           # 299.7 -> 300
    assert sale_price_cents(10, 1, 10000) == 0             # free
    with pytest.raises(OpenMoneyError):
        sale_price_cents(0, 1)
    with pytest.raises(OpenMoneyError):
        sale_price_cents(10, 1, 10001)


def test_gift_codes_are_derived_per_operation_and_digested_as_typed():
    a = gift_code(b"secret-a", "op-1")
    assert a == gift_code(b"secret-a", "op-1")
    assert a != gift_code(b"secret-a", "op-2") and a != gift_code(b"secret-b", "op-1")
    assert len(a) == 19 and a.count("-") == 3
    assert gift_code_digest(a) == gift_code_digest(a.lower().replace("-", " "))
    assert gift_code_digest(a) != gift_code_digest(gift_code(b"secret-a", "op-2"))


def test_kinds_for_product_follow_fig_20s_branches():
    assert kinds_for_product(None, []) == (C, U)
    assert kinds_for_product("acme", ["north"]) == (M, F, G, C, U)


# ---------------------------------------------------------------- FIG 20A/B

def test_one_kind_when_it_suffices_in_fig_20s_order():
    lots = [Lot(1, U, None, 1000), Lot(2, M, "acme", 500), Lot(3, G, "north", 500)]
    plan = plan_payment([Line(1, 10, 1, 400, "acme")], lots, ctx(["north"]))
    assert [(p.lot_id, p.tokens) for p in plan.portions] == [(2, 400)]          # manufacturer first
    plan = plan_payment([Line(1, 11, 1, 400, None)], lots, ctx(["north"]))
    assert [(p.lot_id, p.tokens) for p in plan.portions] == [(3, 400)]          # then group
    plan = plan_payment([Line(1, 11, 1, 400, None)], lots, ctx())
    assert [(p.lot_id, p.tokens) for p in plan.portions] == [(1, 400)]          # not in the group: universal


def test_combined_when_no_kind_suffices_alone():
    lots = [Lot(1, U, None, 600), Lot(2, M, "acme", 300)]
    plan = plan_payment([Line(1, 10, 1, 500, "acme"), Line(2, 11, 1, 200)], lots, ctx())
    assert [(p.line, p.lot_id, p.tokens) for p in plan.portions] == [(1, 2, 300), (1, 1, 200), (2, 1, 200)]
    assert plan.by_kind() == {M: 300, U: 400}
    # with universal tokens enough for the whole order, one kind is used (FIG 20's "one kind")
    alone = plan_payment([Line(1, 10, 1, 500, "acme"), Line(2, 11, 1, 200)], [Lot(1, U, None, 700), lots[1]], ctx())
    assert alone.by_kind() == {U: 700}


def test_soonest_expiring_lot_pays_first_and_expired_lots_never():
    lots = [Lot(1, U, None, 100), Lot(2, U, None, 100, NOW + timedelta(days=30)),
            Lot(3, U, None, 100, NOW + timedelta(days=2)), Lot(4, U, None, 500, NOW - timedelta(seconds=1))]
    plan = plan_payment([Line(1, 1, 1, 250)], lots, ctx())
    assert [(p.lot_id, p.tokens) for p in plan.portions] == [(3, 100), (2, 100), (1, 50)]
    short = plan_payment([Line(1, 1, 1, 301)], lots, ctx())
    assert short.portions == () and short.short_units == 1 and not short.payable


def test_type_2_pays_the_discount_part_only_with_universal_beside_it():
    caps = {"acme": 100}
    lots = [Lot(1, F, "acme", 1000), Lot(2, U, None, 1000)]
    plan = plan_payment([Line(1, 10, 2, 500, "acme")], lots, ctx(caps=caps))
    assert plan.by_kind() == {F: 200, U: 300}                 # cap 100 per item x 2 items
    # alone it pays nothing, not even a line cheaper than its cap
    alone = plan_payment([Line(1, 10, 1, 50, "acme")], [Lot(1, F, "acme", 1000)], ctx(caps=caps))
    assert alone.short_units == 50 and alone.portions == ()
    # never the whole line: at least one universal token
    small = plan_payment([Line(1, 10, 1, 50, "acme")], lots, ctx(caps=caps))
    assert small.by_kind() == {F: 49, U: 1}
    # another brand's product: type 2 of acme is no use
    other = plan_payment([Line(1, 11, 1, 50, "zeta")], lots, ctx(caps=caps))
    assert other.by_kind() == {U: 50}


def test_gift_certificate_is_used_whole_and_gives_change_as_universal():
    lots = [Lot(7, C, "m-a", 2500), Lot(1, U, None, 5000)]
    plan = plan_payment([Line(1, 10, 1, 600)], lots, ctx())
    assert [(p.lot_id, p.tokens) for p in plan.portions] == [(7, 600)]
    assert [(p.lot_id, p.kind, p.tokens) for p in plan.change] == [(7, U, 1900)]


def test_short_names_the_kinds_that_would_help():
    plan = plan_payment([Line(1, 10, 1, 500, "acme"), Line(2, 11, 1, 100)], [Lot(1, U, None, 550)], ctx(["north"]))
    assert plan.short_units == 50 and plan.portions == ()
    assert plan.helpful_kinds == (G, C, U)      # line 2 is short: not a brand's product
    plan = plan_payment([Line(1, 11, 1, 100), Line(2, 10, 1, 500, "acme")], [Lot(1, U, None, 550)], ctx(["north"]))
    assert plan.short_units == 50
    assert plan.helpful_kinds == (M, G, C, U)   # the short line is acme's; type 2 is given, not bought


def test_bad_input_is_refused():
    with pytest.raises(OpenMoneyError):
        plan_payment([], [], ctx())
    with pytest.raises(OpenMoneyError):
        plan_payment([Line(1, 1, 1, 5), Line(1, 2, 1, 5)], [], ctx())
    with pytest.raises(OpenMoneyError):
        plan_payment([Line(1, 1, 1, 0)], [], ctx())
    with pytest.raises(OpenMoneyError):
        plan_payment([Line(1, 1, 1, 5)], [Lot(1, U, None, 5), Lot(1, U, None, 5)], ctx())


# ---------------------------------------------------------------- properties

kinds = st.sampled_from(list(OpenKind))
issuers = {M: ["acme", "zeta"], F: ["acme", "zeta"], G: ["north", "south"], C: ["m-a", "m-c"], U: [None]}


@st.composite
def scenario(draw):
    n_lots = draw(st.integers(0, 8))
    lots = []
    for i in range(n_lots):
        kind = draw(kinds)
        expiry = draw(st.one_of(st.none(), st.integers(-5, 30).map(lambda d: NOW + timedelta(days=d))))
        lots.append(Lot(i + 1, kind, draw(st.sampled_from(issuers[kind])), draw(st.integers(0, 2000)), expiry))
    lines = [Line(n + 1, n + 100, draw(st.integers(1, 3)), draw(st.integers(1, 1500)),
                  draw(st.sampled_from([None, "acme", "zeta"]))) for n in range(draw(st.integers(1, 4)))]
    groups = frozenset(draw(st.lists(st.sampled_from(["north", "south"]), max_size=2)))
    return lines, lots, Context("m-b", groups, {"acme": draw(st.integers(0, 300)), "zeta": 50}, NOW)


@settings(max_examples=400, deadline=None)
@given(scenario())
def test_a_plan_pays_exactly_and_keeps_every_kinds_limits(case):
    lines, lots, c = case
    plan = plan_payment(lines, lots, c)
    by_id = {lot.lot_id: lot for lot in lots}
    if not plan.payable:
        assert plan.portions == () and plan.change == () and plan.short_units > 0
        return
    for line in lines:                                   # every line paid exactly
        mine = [p for p in plan.portions if p.line == line.line]
        assert sum(p.tokens for p in mine) == line.units
        free = sum(p.tokens for p in mine if p.kind == F)
        if free:                                          # type 2: capped, never alone, universal beside it
            assert free <= c.free_cap_units[line.brand_id] * line.quantity and free < line.units
            assert {p.kind for p in mine} <= {M, F, U} and any(p.kind == U for p in mine)
    used: dict[int, int] = {}
    for p in plan.portions:
        lot = by_id[p.lot_id]
        assert p.kind == lot.kind and p.issuer == lot.issuer and p.tokens > 0
        assert lot.usable(NOW)                            # never an expired lot
        line = next(ln for ln in lines if ln.line == p.line)
        if p.kind in (M, F):
            assert lot.issuer == line.brand_id            # a brand's tokens only on its products
        if p.kind == G:
            assert lot.issuer in c.member_groups
        used[p.lot_id] = used.get(p.lot_id, 0) + p.tokens
    for lot_id, n in used.items():
        assert n <= by_id[lot_id].tokens                  # no lot overdrawn
    for ch in plan.change:                                # change: the certificate's rest, once
        assert by_id[ch.lot_id].kind == C and ch.kind == U
        assert used[ch.lot_id] + ch.tokens == by_id[ch.lot_id].tokens
    assert len({ch.lot_id for ch in plan.change}) == len(plan.change)


@settings(max_examples=200, deadline=None)
@given(scenario(), st.randoms(use_true_random=False))
def test_a_plan_does_not_depend_on_the_order_lots_are_given_in(case, rnd: random.Random):
    lines, lots, c = case
    shuffled = list(lots)
    rnd.shuffle(shuffled)
    assert plan_payment(lines, shuffled, c) == plan_payment(lines, lots, c)


@settings(max_examples=200, deadline=None)
@given(scenario())
def test_enough_universal_tokens_always_pay(case):
    lines, lots, c = case
    total = sum(ln.units for ln in lines)
    plan = plan_payment(lines, [*lots, Lot(999, U, None, total)], c)
    assert plan.payable


# ---------------------------------------------------------------- who owes whom

def test_the_patents_example_seller_98_accepting_97_msp_1():
    # A sold 10,000 universal tokens of 1 cent at full price; all are spent at B
    lines = portion_cash(U, 10_000, 1, 10_000, seller="m-a", accepting="m-b")
    assert lines == [CashLine("m-a", "m-b", 1_000_000)]
    split = split_units(lines[0].units, FeeSchedule(service_charge_bp=200, royalty_bp=100))
    assert split.payer_units == -980_000 and split.receiver_units == 970_000 and split.msp_units == 10_000


def test_manufacturer_tokens_the_brand_pays_the_discount_and_type_2_whole():
    lines = portion_cash(M, 1000, 1, 9000, seller="m-a", accepting="m-b", brand_member="m-c")
    assert lines == [CashLine("m-a", "m-b", 90_000), CashLine("m-c", "m-b", 10_000)]
    assert portion_cash(F, 1000, 1, 0, seller="m-c", accepting="m-b", brand_member="m-c") == [
        CashLine("m-c", "m-b", 100_000)]
    # the brand's own store accepting its tokens owes itself nothing
    assert portion_cash(F, 1000, 1, 0, seller="m-c", accepting="m-c", brand_member="m-c") == []
    with pytest.raises(OpenMoneyError):
        portion_cash(M, 10, 1, 9000, seller="m-a", accepting="m-b")


@settings(max_examples=300, deadline=None)
@given(kinds, st.integers(1, 10**6), st.integers(1, 100), st.integers(0, 10_000))
def test_a_portions_cash_is_its_face_value_at_most_and_never_negative(kind, tokens, unit, bp):
    lines = portion_cash(kind, tokens, unit, bp, seller="s", accepting="a", brand_member="b")
    total = sum(ln.units for ln in lines)
    face = tokens * unit * 100
    assert all(ln.units > 0 for ln in lines)
    if kind in (M, F):
        assert total == face                              # the brand makes the accepting member whole
    else:
        assert total == face * bp // 10_000
