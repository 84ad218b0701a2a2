"""Prices, in one place: the vendor's token policy (token price, minimum,
preferred-customer discount), bundle and purchase amounts, and the cash value
of a number of tokens (FIG 3, 4, 17). Tokens are integers, cash integer cents,
discounts integer basis points (1% = 100 bp): never floats."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ..models.user import User
from ..models.wallet import Bundle, TokenPolicy
from .errors import Invalid

FULL_BP = 10_000   # 100 percent in basis points: the cap on added-up discounts


def policy(db: Session) -> TokenPolicy:
    """The vendor's token policy row (one row, created by the first migration)."""
    p = db.get(TokenPolicy, 1)
    if p is None:
        raise RuntimeError("token policy row missing: run the migrations")
    return p


def token_price_cents(db: Session) -> int:
    return policy(db).token_price_cents


def cash_cents(tokens: int, price_per_token_cents: int) -> int:
    """What `tokens` are worth at the token price (no discount): store prices, receipts."""
    return tokens * price_per_token_cents


def preferred_discount_bp(p: TokenPolicy, user: User | None) -> int:
    return p.preferred_discount_bp if user is not None and user.preferred else 0


def discount_bp(p: TokenPolicy, user: User | None, bundle: Bundle | None) -> int:
    """Discounts add up, capped at 100%: a bundle's plus the preferred-customer discount."""
    bundle_bp = bundle.discount_bp if bundle is not None else 0
    return min(bundle_bp + preferred_discount_bp(p, user), FULL_BP)


def purchase_amount(price_per_token_cents: int, tokens: int, discount: int) -> tuple[int, int]:
    """(gross, amount due) in cents for `tokens` at a `discount` in basis points;
    the discount is rounded half up to a cent."""
    gross = cash_cents(tokens, price_per_token_cents)
    return gross, (gross * (FULL_BP - discount) + FULL_BP // 2) // FULL_BP


def bp_to_percent(bp: int) -> float:
    return bp / 100


def percent_to_bp(percent: float) -> int:
    bp = round(float(percent) * 100)
    if not 0 <= bp <= FULL_BP:
        raise Invalid("a discount is between 0 and 100 percent")
    return bp


def bundle_view(p: TokenPolicy, user: User | None, b: Bundle) -> dict[str, Any]:
    """A bundle with its price for `user` (the preferred discount added when it applies)."""
    gross, amount = purchase_amount(p.token_price_cents, b.tokens, discount_bp(p, user, b))
    return {"id": b.id, "name": b.name, "tokens": b.tokens, "discount_percent": bp_to_percent(b.discount_bp),
            "price_cents": amount, "list_price_cents": gross}
