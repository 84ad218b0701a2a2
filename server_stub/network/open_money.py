"""The open tokens' rules, in one place (FIG 18-20, claims 6-9, 22-25;
docs/mall.md "Open tokens"). Pure: integers, no database, no clock of its own.
The MSP (server_stub/mall), the vendors and the storefront all use these.

- One open unit counts every kind; its cash value is the MSP's
  `unit_value_cents` (default 1 cent).
- `plan_payment` is FIG 20A/B: which of a customer's lots pay which order lines.
- `portion_cash` is FIG 18 step 7 and claim 8: who owes whom for tokens spent;
  each line then goes through `network.money.split_units` (fees).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from .money import BASIS_POINTS, UNITS_PER_CENT

OPEN_ASSET_PREFIX = "open:"


class OpenKind(StrEnum):
    UNIVERSAL = "universal"                   # one value at every member
    MANUFACTURER = "manufacturer"             # type 1: sold at a discount, only the brand's products
    MANUFACTURER_FREE = "manufacturer_free"   # type 2: free, pays at most the brand's discount per item
    GROUP = "group"                           # issued and accepted within one group of members
    GIFT_CERTIFICATE = "gift_certificate"     # a cash value, used whole, change as universal tokens


# The kinds a lot's issuer names: a brand, a group, the member that sold a certificate.
ISSUER_KINDS = frozenset({OpenKind.MANUFACTURER, OpenKind.MANUFACTURER_FREE, OpenKind.GROUP,
                          OpenKind.GIFT_CERTIFICATE})

# FIG 20A/B: the order in which kinds are tried, alone first, then combined (universal last).
SINGLE_KIND_ORDER = (OpenKind.MANUFACTURER, OpenKind.GROUP, OpenKind.GIFT_CERTIFICATE, OpenKind.UNIVERSAL)


class OpenMoneyError(ValueError):
    """An input the rules cannot take (the message says which)."""


def asset_name(kind: OpenKind, issuer: str | None) -> str:
    """The MSP book asset of a kind: `open:universal`, `open:<kind>:<issuer>`."""
    kind = OpenKind(kind)
    if kind == OpenKind.UNIVERSAL:
        if issuer:
            raise OpenMoneyError("universal tokens have no issuer")
        return OPEN_ASSET_PREFIX + kind.value
    if not issuer or ":" in issuer:
        raise OpenMoneyError(f"{kind.value} tokens need an issuer without ':'")
    return f"{OPEN_ASSET_PREFIX}{kind.value}:{issuer}"


def parse_asset(asset: str) -> tuple[OpenKind, str | None]:
    if not asset.startswith(OPEN_ASSET_PREFIX):
        raise OpenMoneyError(f"not an open asset: {asset!r}")
    kind, _, issuer = asset[len(OPEN_ASSET_PREFIX):].partition(":")
    try:
        parsed = OpenKind(kind)
    except ValueError:
        raise OpenMoneyError(f"not an open kind: {kind!r}") from None
    if (parsed == OpenKind.UNIVERSAL) != (issuer == ""):
        raise OpenMoneyError(f"bad open asset: {asset!r}")
    return parsed, issuer or None


def units_for_cents(cents: int, unit_value_cents: int) -> int:
    """The open units that pay `cents` (rounded up: a price is never underpaid)."""
    if cents < 0 or unit_value_cents < 1:
        raise OpenMoneyError("cents must not be negative and the unit must be worth at least 1 cent")
    return -(-cents // unit_value_cents)


def sale_price_cents(tokens: int, unit_value_cents: int, discount_bp: int = 0) -> int:
    """What a customer pays for `tokens` open units sold at `discount_bp` off
    their face value (rounded up to a cent, in the seller's favour; 10000 bp: free)."""
    if tokens < 1 or unit_value_cents < 1:
        raise OpenMoneyError("tokens and the unit's value must be at least 1")
    if not 0 <= discount_bp <= BASIS_POINTS:
        raise OpenMoneyError(f"a discount is 0 to {BASIS_POINTS} basis points")
    face = tokens * unit_value_cents
    return -(-face * (BASIS_POINTS - discount_bp) // BASIS_POINTS)


def paid_bp(discount_bp: int) -> int:
    """The share of face value the seller was paid, in basis points."""
    return BASIS_POINTS - discount_bp


# ---------------------------------------------------------------- gift certificate codes

GIFT_CODE_GROUPS = 4


def gift_code(secret: bytes, operation_id: str) -> str:
    """The redemption code of the certificate sold by `operation_id`: derived
    (HMAC-SHA256 with the selling member's secret), so the seller can show it
    again to its buyer without storing it; the MSP keeps only its digest.
    80 bits, as XXXX-XXXX-XXXX-XXXX (base32, no padding)."""
    mac = hmac.new(secret, b"gift-certificate\n" + operation_id.encode(), hashlib.sha256).digest()
    text = base64.b32encode(mac[:10]).decode()
    return "-".join(text[i:i + 4] for i in range(0, 4 * GIFT_CODE_GROUPS, 4))


def normalize_gift_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def gift_code_digest(code: str) -> str:
    """SHA-256 hex of the code as typed, without dashes, spaces or case."""
    return hashlib.sha256(normalize_gift_code(code).encode()).hexdigest()


# ---------------------------------------------------------------- FIG 20A/B: which kinds pay

@dataclass(frozen=True)
class Lot:
    lot_id: int
    kind: OpenKind
    issuer: str | None
    tokens: int
    expires_at: datetime | None = None

    def usable(self, now: datetime) -> bool:
        return self.tokens > 0 and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True)
class Line:
    line: int                   # the order line's number (1, 2, ...)
    product_id: int
    quantity: int               # items (a rental tier counts as 1)
    units: int                  # what the line costs in open units
    brand_id: str | None = None  # the product list 2103 entry of (accepting member, product), if any


@dataclass(frozen=True)
class Context:
    member_id: str                                       # the accepting member
    member_groups: frozenset[str] = frozenset()          # the groups it belongs to
    free_cap_units: Mapping[str, int] = field(default_factory=dict)   # brand -> type 2 cap per item
    now: datetime | None = None


@dataclass(frozen=True)
class Portion:
    line: int          # 0 for change
    lot_id: int
    kind: OpenKind
    issuer: str | None
    tokens: int


@dataclass(frozen=True)
class OpenPlan:
    portions: tuple[Portion, ...] = ()
    change: tuple[Portion, ...] = ()     # a certificate's unused rest, given back as universal tokens
    short_units: int = 0
    helpful_kinds: tuple[OpenKind, ...] = ()

    @property
    def payable(self) -> bool:
        return self.short_units == 0

    @property
    def units(self) -> int:
        return sum(p.tokens for p in self.portions)

    def by_kind(self) -> dict[OpenKind, int]:
        out: dict[OpenKind, int] = {}
        for p in self.portions:
            out[p.kind] = out.get(p.kind, 0) + p.tokens
        return out


def kinds_for_product(brand_id: str | None, member_groups: Iterable[str]) -> tuple[OpenKind, ...]:
    """The kinds that can pay for a product at a member (the store's hint, FIG 20's branches)."""
    kinds: list[OpenKind] = []
    if brand_id:
        kinds += [OpenKind.MANUFACTURER, OpenKind.MANUFACTURER_FREE]
    if any(True for _ in member_groups):
        kinds.append(OpenKind.GROUP)
    return (*kinds, OpenKind.GIFT_CERTIFICATE, OpenKind.UNIVERSAL)


def _order_key(lot: Lot) -> tuple[bool, datetime | None, int]:
    # soonest expiry first, lots that never expire last, then the oldest lot
    return (lot.expires_at is None, lot.expires_at, lot.lot_id)


class _Allocation:
    """What is left of each lot while a plan is built."""

    def __init__(self, lots: Sequence[Lot]) -> None:
        self.lots = sorted(lots, key=_order_key)
        self.left = {lot.lot_id: lot.tokens for lot in self.lots}
        self.portions: list[Portion] = []
        self.touched_certificates: list[int] = []

    def available(self, eligible: Iterable[Lot]) -> int:
        return sum(self.left[lot.lot_id] for lot in eligible)

    def take(self, line: int, eligible: Sequence[Lot], wanted: int) -> int:
        """Take up to `wanted` from the eligible lots in their order; returns what was taken."""
        taken = 0
        for lot in eligible:
            if taken == wanted:
                break
            n = min(self.left[lot.lot_id], wanted - taken)
            if n <= 0:
                continue
            self.left[lot.lot_id] -= n
            taken += n
            self.portions.append(Portion(line, lot.lot_id, lot.kind, lot.issuer, n))
            if lot.kind == OpenKind.GIFT_CERTIFICATE and lot.lot_id not in self.touched_certificates:
                self.touched_certificates.append(lot.lot_id)
        return taken

    def change(self) -> tuple[Portion, ...]:
        """A certificate is used whole: the rest of each one touched comes back as universal tokens."""
        return tuple(Portion(0, lot_id, OpenKind.UNIVERSAL, None, self.left[lot_id])
                     for lot_id in self.touched_certificates if self.left[lot_id] > 0)


def _eligible(lots: Sequence[Lot], kind: OpenKind, line: Line, ctx: Context) -> list[Lot]:
    out = [lot for lot in lots if lot.kind == kind]
    if kind in (OpenKind.MANUFACTURER, OpenKind.MANUFACTURER_FREE):
        out = [lot for lot in out if line.brand_id is not None and lot.issuer == line.brand_id]
    elif kind == OpenKind.GROUP:
        out = [lot for lot in out if lot.issuer in ctx.member_groups]
    return out


def _single_kind(lines: Sequence[Line], lots: Sequence[Lot], kind: OpenKind, ctx: Context) -> _Allocation | None:
    alloc = _Allocation(lots)
    for line in lines:
        if alloc.take(line.line, _eligible(alloc.lots, kind, line, ctx), line.units) < line.units:
            return None
    return alloc


def _combined(lines: Sequence[Line], lots: Sequence[Lot], ctx: Context) -> tuple[_Allocation, int, list[Line]]:
    alloc = _Allocation(lots)
    short, short_lines = 0, []
    for line in lines:
        rest = line.units
        rest -= alloc.take(line.line, _eligible(alloc.lots, OpenKind.MANUFACTURER, line, ctx), rest)
        if rest > 1 and line.brand_id is not None:
            # type 2 pays at most the brand's discount per item, never the whole line, and only
            # when universal tokens pay what it leaves (NETWORK-NOTES item 6)
            free = _eligible(alloc.lots, OpenKind.MANUFACTURER_FREE, line, ctx)
            universal = _eligible(alloc.lots, OpenKind.UNIVERSAL, line, ctx)
            cap = ctx.free_cap_units.get(line.brand_id, 0) * line.quantity
            t2 = min(cap, rest - 1, alloc.available(free))
            if t2 > 0 and alloc.available(universal) >= rest - t2:
                alloc.take(line.line, free, t2)
                alloc.take(line.line, universal, rest - t2)
                rest = 0
        for kind in (OpenKind.GROUP, OpenKind.GIFT_CERTIFICATE, OpenKind.UNIVERSAL):
            if rest:
                rest -= alloc.take(line.line, _eligible(alloc.lots, kind, line, ctx), rest)
        if rest:
            short += rest
            short_lines.append(line)
    return alloc, short, short_lines


def plan_payment(lines: Sequence[Line], lots: Sequence[Lot], ctx: Context) -> OpenPlan:
    """FIG 20A/B, deterministic (docs/mall.md "Which kind pays"): expired and
    empty lots are never used; one kind for the whole order when one suffices
    (manufacturer, group, gift certificate, universal, in that order), else per
    line combined: manufacturer type 1 of the line's brand, type 2 up to its cap
    with universal tokens for the rest, group, gift certificate, universal last.
    Within a kind the soonest-expiring lot pays first. When a line can take
    type 2 tokens (a discount given), the order is paid combined. Short: no portions."""
    if not lines:
        raise OpenMoneyError("a payment needs at least one line")
    if len({ln.line for ln in lines}) != len(lines) or any(ln.line < 1 for ln in lines):
        raise OpenMoneyError("line numbers must be distinct and start at 1")
    if any(ln.units < 1 or ln.quantity < 1 for ln in lines):
        raise OpenMoneyError("every line costs at least 1 unit and has at least 1 item")
    if len({lot.lot_id for lot in lots}) != len(lots):
        raise OpenMoneyError("lot ids must be distinct")
    now = ctx.now
    usable = [lot for lot in lots if (lot.usable(now) if now is not None else lot.tokens > 0)]
    # type 2 tokens are a discount the customer was given: when a line can take them, the
    # order is paid combined (they with universal tokens), never by one other kind instead
    discount = any(ln.brand_id is not None and ctx.free_cap_units.get(ln.brand_id, 0) > 0
                   and _eligible(usable, OpenKind.MANUFACTURER_FREE, ln, ctx) for ln in lines)
    for kind in () if discount else SINGLE_KIND_ORDER:
        alloc = _single_kind(lines, usable, kind, ctx)
        if alloc is not None:
            return OpenPlan(tuple(alloc.portions), alloc.change())
    alloc, short, short_lines = _combined(lines, usable, ctx)
    if short:
        helpful = dict.fromkeys(k for ln in short_lines for k in kinds_for_product(ln.brand_id, ctx.member_groups)
                                if k != OpenKind.MANUFACTURER_FREE)   # type 2 is given, not bought
        return OpenPlan(short_units=short, helpful_kinds=tuple(helpful))
    return OpenPlan(tuple(alloc.portions), alloc.change())


# ---------------------------------------------------------------- FIG 18 step 7, claim 8: who owes whom

@dataclass(frozen=True)
class CashLine:
    """`payer` owes `receiver` `units` (1/100 cent) for open tokens accepted."""

    payer: str
    receiver: str
    units: int


def face_units(tokens: int, unit_value_cents: int) -> int:
    return tokens * unit_value_cents * UNITS_PER_CENT


def portion_cash(kind: OpenKind, tokens: int, unit_value_cents: int, lot_paid_bp: int, *, seller: str,
                 accepting: str, brand_member: str | None = None) -> list[CashLine]:
    """What `tokens` of one lot, spent at `accepting`, cost whom:

    - universal, gift certificate, group: the seller owes what it was paid for
      them (face x paid_bp); for group tokens the accepting member bears the
      group's agreed discount;
    - manufacturer type 1: the seller owes what it was paid, the brand's member
      the discount part (claim 8: manufacturers compensate the members that
      accept their tokens); type 2 (free): the brand's member owes the face value.

    A party owing itself is no line. Floors go to the brand (type 1), so the
    two lines of a portion sum to its face value exactly."""
    if tokens < 1:
        raise OpenMoneyError("a portion has at least 1 token")
    if not 0 <= lot_paid_bp <= BASIS_POINTS:
        raise OpenMoneyError("paid_bp is 0 to 10000")
    face = face_units(tokens, unit_value_cents)
    seller_part = face * lot_paid_bp // BASIS_POINTS
    kind = OpenKind(kind)
    lines: list[CashLine] = []
    if kind in (OpenKind.MANUFACTURER, OpenKind.MANUFACTURER_FREE):
        if brand_member is None:
            raise OpenMoneyError("manufacturer tokens need the brand's member")
        if kind == OpenKind.MANUFACTURER_FREE:
            seller_part = 0
        lines.append(CashLine(seller, accepting, seller_part))
        lines.append(CashLine(brand_member, accepting, face - seller_part))
    else:
        lines.append(CashLine(seller, accepting, seller_part))
    return [ln for ln in lines if ln.units > 0 and ln.payer != ln.receiver]
