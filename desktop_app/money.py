"""Prices: every price in tokens and its cash equivalent (FIG 17).

Tokens are integers, cash is integer cents: never floats.
"""
from __future__ import annotations


class Pricing:
    """Knows the cash price of one token (from GET /v1/token-offers)."""

    def __init__(self, token_price_cents: int | None = None, currency: str = "USD"):
        self.token_price_cents = token_price_cents
        self.currency = currency

    @classmethod
    def from_offers(cls, offers: dict) -> "Pricing":
        cents = offers.get("token_price_cents")
        if cents is None:
            cents = offers.get("price_cents")
        return cls(int(cents) if cents is not None else None, str(offers.get("currency", "USD")))

    def cash_cents(self, tokens: int) -> int | None:
        if self.token_price_cents is None:
            return None
        return int(tokens) * self.token_price_cents

    def tokens_text(self, tokens: int) -> str:
        """'180 tokens ($18.00)'."""
        text = f"{int(tokens):,} token{'s' if abs(int(tokens)) != 1 else ''}"
        cents = self.cash_cents(tokens)
        return f"{text} ({format_cents(cents, self.currency)})" if cents is not None else text


def format_cents(cents: int, currency: str = "USD") -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(int(cents))
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency, currency + " ")
    return f"{sign}{symbol}{cents // 100:,}.{cents % 100:02d}"
