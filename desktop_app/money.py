"""Prices: every price in tokens and its cash equivalent (FIG 17).

Tokens are integers, cash is integer cents: never floats.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from desktop_app.api.replies import TokenOffers


class Pricing:
    """Knows the cash price of one token (GET /v1/token-offers: ``token_price_cents``)."""

    def __init__(self, token_price_cents: int | None = None, currency: str = "USD"):
        self.token_price_cents = token_price_cents
        self.currency = currency

    @classmethod
    def from_offers(cls, offers: TokenOffers | None) -> Pricing:
        """The server states no currency: its cents are the store's (USD) cents."""
        return cls(offers.token_price_cents if offers is not None else None)

    def cash_cents(self, tokens: int) -> int | None:
        if self.token_price_cents is None:
            return None
        return int(tokens) * self.token_price_cents

    def tokens_text(self, tokens: int) -> str:
        """'180 tokens ($18.00)'."""
        text = f"{int(tokens):,} token{'s' if abs(int(tokens)) != 1 else ''}"
        cents = self.cash_cents(tokens)
        return f"{text} ({format_cents(cents, self.currency)})" if cents is not None else text

    def cell_text(self, tokens: int) -> str:
        """A grid cell: '180 ($18.00)'."""
        cents = self.cash_cents(tokens)
        return f"{int(tokens):,}" + (f" ({format_cents(cents, self.currency)})" if cents is not None else "")

    def tooltip(self) -> str:
        """How prices are shown (another member's store says how it converts them)."""
        return ""


def format_cents(cents: int, currency: str = "USD") -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(int(cents))
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency, currency + " ")
    return f"{sign}{symbol}{cents // 100:,}.{cents % 100:02d}"
