"""Card payments behind a small interface, so a real provider can replace
the simulation. Only the brand and the last four digits are ever stored."""
from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, UTC
from typing import Protocol

from .errors import Invalid


@dataclass(frozen=True)
class Card:
    number: str       # digits only
    exp_month: int
    exp_year: int
    cvc: str

    @property
    def last4(self) -> str:
        return self.number[-4:]

    @property
    def brand(self) -> str:
        n = self.number
        if n.startswith("4"):
            return "visa"
        if n[:2] in ("34", "37"):
            return "amex"
        if 51 <= int(n[:2]) <= 55 or 2221 <= int(n[:4]) <= 2720:
            return "mastercard"
        if n.startswith("6011") or n.startswith("65"):
            return "discover"
        return "other"


@dataclass(frozen=True)
class ChargeResult:
    approved: bool
    reference: str = ""
    decline_code: str = ""   # "card_declined", "insufficient_funds", ...


class CardProcessor(Protocol):
    def charge(self, card: Card, amount_cents: int, reference: str) -> ChargeResult: ...


def charge_reference(what: str) -> str:
    """A charge's reference, drawn (`what-<uuid>`), not a row's id: an id rolled back with its
    transaction may be given again, and the sale's row can be written once, with the result."""
    return f"{what}-{uuid.uuid4().hex}"


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_EXPIRY = re.compile(r"^\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*$")


def parse_card(number: str, expiry: str, cvc: str, now: datetime | None = None) -> Card:
    """Validate card input; every problem is a 422 with a clear message."""
    digits = re.sub(r"[ -]", "", number or "")
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
        raise Invalid("card_number must be 12 to 19 digits")
    if not luhn_ok(digits):
        raise Invalid("card_number fails the Luhn check")
    m = _EXPIRY.match(expiry or "")
    if not m:
        raise Invalid("card_expiry must look like MM/YY")
    month, year = int(m.group(1)), int(m.group(2))
    if year < 100:
        year += 2000
    if not 1 <= month <= 12:
        raise Invalid("card_expiry month must be 01-12")
    now = now or datetime.now(UTC)
    if (year, month) < (now.year, now.month):
        raise Invalid("card has expired")
    if not re.fullmatch(r"\d{3,4}", cvc or ""):
        raise Invalid("card_cvc must be 3 or 4 digits")
    return Card(digits, month, year, cvc)


class SimulatedCardProcessor:
    """The stub payment network (Stripe-like test numbers):
    4000 0000 0000 0002 is declined, 4000 0000 0000 9995 has insufficient
    funds, every other valid number (e.g. 4242 4242 4242 4242) is approved."""

    DECLINES = {
        "4000000000000002": "card_declined",
        "4000000000009995": "insufficient_funds",
    }

    def charge(self, card: Card, amount_cents: int, reference: str) -> ChargeResult:
        code = self.DECLINES.get(card.number)
        if code:
            return ChargeResult(False, decline_code=code)
        ref = "sim_" + hashlib.sha256(f"{reference}:{amount_cents}".encode()).hexdigest()[:20]
        return ChargeResult(True, reference=ref)


_PROCESSOR: CardProcessor = SimulatedCardProcessor()


def processor() -> CardProcessor:
    """The payment network: the simulated one (a real provider would be returned here)."""
    return _PROCESSOR
