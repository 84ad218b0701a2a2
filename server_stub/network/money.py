"""The network's money rules, in one place (DESIGN.md "Money across the network",
docs/mall.md). Pure integer arithmetic: no floats, no database.

Units: tokens are whole tokens; cash is cents; fees accrue in 1/100 cents
("units", UNITS_PER_CENT per cent) and are rounded to cents once per statement,
the residue carried to the next period.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

UNITS_PER_CENT = 100
BASIS_POINTS = 10_000


class ExchangeRefused(ValueError):
    """The asked exchange cannot be made (the reason is in the message)."""


@dataclass(frozen=True)
class ExchangeAmounts:
    """N Token-A asked -> M Token-B; only N' (tokens_from) Token-A move."""

    tokens_asked: int          # N
    tokens_from: int           # N' = ceil(M x value_to / value_from) <= N
    tokens_to: int             # M = floor(N x value_from / value_to)
    value_cents: int           # M x value_to: what the member whose tokens left owes
    rounding_gain_cents: int   # N' x value_from - M x value_to (< value_from): stays with that member


def exchange_amounts(tokens: int, value_from_cents: int, value_to_cents: int) -> ExchangeAmounts:
    if tokens < 1:
        raise ExchangeRefused("tokens must be at least 1")
    if value_from_cents < 1 or value_to_cents < 1:
        raise ExchangeRefused("token values must be at least 1 cent")
    to = tokens * value_from_cents // value_to_cents
    if to == 0:
        raise ExchangeRefused(f"{tokens} tokens worth {value_from_cents} cents each buy no whole token "
                              f"worth {value_to_cents} cents; exchange at least "
                              f"{-(-value_to_cents // value_from_cents)}")
    value = to * value_to_cents
    moved = -(-value // value_from_cents)          # ceil
    return ExchangeAmounts(tokens, moved, to, value, moved * value_from_cents - value)


@dataclass(frozen=True)
class FeeSchedule:
    """One member's agreement: basis points of the moved value, plus fixed
    cents per operation (to the MSP, with the royalty)."""

    service_charge_bp: int = 0
    royalty_bp: int = 0
    fixed_fee_cents: int = 0

    def __post_init__(self) -> None:
        for name in ("service_charge_bp", "royalty_bp"):
            if not 0 <= getattr(self, name) <= BASIS_POINTS:
                raise ValueError(f"{name} must be between 0 and {BASIS_POINTS}")
        if self.service_charge_bp + self.royalty_bp > BASIS_POINTS:
            raise ValueError("service charge and royalty together must not exceed 100 %")
        if self.fixed_fee_cents < 0:
            raise ValueError("fixed_fee_cents must not be negative")


@dataclass(frozen=True)
class Split:
    """Who gets what of a value moved from the paying member to the receiving
    member, in units (1/100 cent). The three always sum to zero."""

    payer_units: int       # negative: what the paying member owes
    msp_units: int         # royalty + fixed fee
    receiver_units: int    # what the receiving member is owed
    service_charge_units: int
    royalty_units: int
    fixed_fee_units: int

    def positions(self, payer: str, receiver: str, msp: str = "msp") -> dict[str, int]:
        out = {payer: 0, receiver: 0, msp: 0}
        out[payer] += self.payer_units
        out[receiver] += self.receiver_units
        out[msp] += self.msp_units
        return out


def split_value(value_cents: int, payer_schedule: FeeSchedule) -> Split:
    """The paying member keeps its service charge (it sold the tokens), the
    MSP takes its royalty and fixed fee from the rest, the receiving member is
    owed what remains (FIG 18 step 7; NETWORK-NOTES item 7: $100, 2 %, 1 % ->
    payer debited $98, receiver $97, MSP $1). Each fee is floored to a unit;
    what a floor leaves stays with the receiver, so the split is exact."""
    if value_cents < 0:
        raise ValueError("value_cents must not be negative")
    return split_units(value_cents * UNITS_PER_CENT, payer_schedule)


def split_units(value: int, payer_schedule: FeeSchedule) -> Split:
    """split_value of a value already in units (open-token portions are worth
    fractions of a cent: docs/mall.md "Open tokens")."""
    if value < 0:
        raise ValueError("value must not be negative")
    service = value * payer_schedule.service_charge_bp // BASIS_POINTS
    royalty = value * payer_schedule.royalty_bp // BASIS_POINTS
    fixed = min(payer_schedule.fixed_fee_cents * UNITS_PER_CENT, value - service - royalty)
    paid = value - service
    return Split(payer_units=-paid, msp_units=royalty + fixed, receiver_units=paid - royalty - fixed,
                 service_charge_units=service, royalty_units=royalty, fixed_fee_units=fixed)


def royalty_units(sale_cents: int, royalty_bp: int) -> int:
    """FIG 13: the MSP's royalty on a member's token sale, floored to a unit
    (1/100 cent); the member keeps what the floor leaves."""
    if sale_cents < 0 or not 0 <= royalty_bp <= BASIS_POINTS:
        raise ValueError("sale_cents must not be negative and royalty_bp must be 0..10000")
    return sale_cents * UNITS_PER_CENT * royalty_bp // BASIS_POINTS


def whole_cents(units: int) -> int:
    """The whole cents in a non-negative number of units (what can be paid now)."""
    if units < 0:
        raise ValueError("units must not be negative")
    return units // UNITS_PER_CENT


@dataclass(frozen=True)
class StatementLine:
    """A member's position for a period rounded to cents, and the residue
    (in units, |residue| < UNITS_PER_CENT) carried to its next period."""

    net_cents: int
    carried_units: int


def round_positions(units_by_party: Mapping[str, int], carried_in: Mapping[str, int],
                    house: str = "msp") -> dict[str, StatementLine]:
    """Round each party's period position (plus what it carried in) to whole
    cents, toward zero, carrying the residue forward. The house (the MSP)
    takes the opposite of the others' rounded sum, so the period's cents sum
    to zero exactly; its own residue is what the others carried."""
    parties = set(units_by_party) | set(carried_in)
    if sum(units_by_party.values()) != 0:
        raise ValueError("a period's positions must sum to zero")
    out: dict[str, StatementLine] = {}
    others = 0
    for party in sorted(parties - {house}):
        total = units_by_party.get(party, 0) + carried_in.get(party, 0)
        cents = total // UNITS_PER_CENT if total >= 0 else -((-total) // UNITS_PER_CENT)
        out[party] = StatementLine(cents, total - cents * UNITS_PER_CENT)
        others += cents
    house_total = units_by_party.get(house, 0) + carried_in.get(house, 0)
    out[house] = StatementLine(-others, house_total + others * UNITS_PER_CENT)
    return out
