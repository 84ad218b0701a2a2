"""Prices at another member of the mall, for display (FIG 17).

The one place where the storefront converts between members' tokens: a price the member's
server gives in its own tokens is also shown in cash (its token's value in the MSP's
directory, GET /v1/mall) and in the user's home tokens at the current rate, rounded UP to
whole home tokens (what it would take at least to exchange for it; an exchange quote gives
the exact numbers). The servers decide every real amount; this only labels prices.
"""
from __future__ import annotations

from PySide6.QtCore import QCoreApplication

from desktop_app.api.replies import MallMember
from desktop_app.money import Pricing, format_cents


def _tr(text: str) -> str:
    return QCoreApplication.translate("MemberPricing", text)


def token_count_text(tokens: int, token_name: str) -> str:
    return f"{int(tokens):,} {token_name}"


def home_tokens_for(tokens: int, value_cents: int, home_value_cents: int) -> int:
    """The home tokens worth at least ``tokens`` of a token of ``value_cents``: rounded up."""
    return -(-int(tokens) * value_cents // home_value_cents)


class MemberPricing(Pricing):
    """Prices in one member's tokens, with their cash value and their worth in home tokens."""

    def __init__(self, member: MallMember, home: MallMember):
        super().__init__(member.token.value_cents)
        self.member = member
        self.home = home

    def home_tokens(self, tokens: int) -> int:
        return home_tokens_for(tokens, self.member.token.value_cents, self.home.token.value_cents)

    def tokens_text(self, tokens: int) -> str:
        """'40 Token-B ($2.00, about 20 Token-A)'."""
        cash = format_cents(int(tokens) * self.member.token.value_cents, self.currency)
        home = token_count_text(self.home_tokens(tokens), self.home.token.name)
        return _tr("{tokens} ({cash}, {home} at today's rate)").format(
            tokens=token_count_text(tokens, self.member.token.name), cash=cash, home=home)

    def choice_text(self, tokens: int) -> str:
        """A tier in a list box: '40 ($2.00, ≈ 20 Token-A)', the grid cell's forms on one line (the
        product panel says whose tokens; the tooltip says the rest), so the closed box is not clipped."""
        cash = format_cents(int(tokens) * self.member.token.value_cents, self.currency)
        return f"{int(tokens):,} ({cash}, ≈ {self.home_tokens(tokens):,} {self.home.token.name})"

    def tooltip(self) -> str:
        return _tr("Prices are {member}'s, in {token}. The cash value is {value} a token; the {home} "
                   "figure is at today's rate ({home_value} a token), rounded up to whole tokens. "
                   "An exchange quote gives the exact numbers.").format(
            member=self.member.name, token=self.member.token.name,
            value=format_cents(self.member.token.value_cents, self.currency), home=self.home.token.name,
            home_value=format_cents(self.home.token.value_cents, self.currency))

    # a grid cell is two lines (the store page makes its rows two lines high while browsing):
    # on one line the three forms made the grid scroll sideways at 1280x800
    CELL_LINES = 2

    def cell_text(self, tokens: int) -> str:
        """A grid cell: '40 ($2.00)' over '≈ 20 Token-A', narrow enough for four columns."""
        cash = format_cents(int(tokens) * self.member.token.value_cents, self.currency)
        return f"{int(tokens):,} ({cash})\n≈ {self.home_tokens(tokens):,} {self.home.token.name}"
