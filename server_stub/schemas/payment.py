"""How a purchase request pays: `method` and, with method card and only then, the card's three
fields. One definition for the requests that take a payment (wallet.TokenPurchaseCreate,
open_tokens.OpenPurchaseCreate): each field's constraints, the rule, and the rule in the schema.

Each model declares the fields itself, in its own place among its other fields, so that its
schema's properties and its 422 answers keep their order:

    method: PaymentMethodIn
    card_number: CardNumber = None
    card_expiry: CardExpiry = None
    card_cvc: CardCvc = None
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from ..vocabulary import PaymentMethod
from .common import FROM_JSON

CARD_FIELDS = ("card_number", "card_expiry", "card_cvc")
OFFLINE_METHODS = [m.value for m in PaymentMethod if m != PaymentMethod.CARD]

PaymentMethodIn = Annotated[PaymentMethod, FROM_JSON]
# the shapes services/cards.py parse_card accepts; None unless method card
CardNumber = Annotated[str, Field(max_length=32, pattern=r"^[ -]*([0-9][ -]*){12,19}$",
                                  description="12-19 digits, spaces and dashes allowed")] | None
CardExpiry = Annotated[str, Field(max_length=10, pattern=(
    r"^[ \t\n\r]*(0?[1-9]|1[0-2])[ \t\n\r]*/[ \t\n\r]*([0-9]{2}|[0-9]{4})[ \t\n\r]*$"),
    description="MM/YY or MM/YYYY, this month or later")] | None
CardCvc = Annotated[str, Field(max_length=4, pattern=r"^[0-9]{3,4}$")] | None


def card_rule() -> dict[str, Any]:
    """check_card_fields in JSON Schema (for a model's allOf): the card fields with method
    card, and null otherwise."""
    return {"oneOf": [
        {"required": ["method", *CARD_FIELDS],
         "properties": {"method": {"const": "card"}, **{f: {"type": "string"} for f in CARD_FIELDS}}},
        {"properties": {"method": {"enum": OFFLINE_METHODS}, **{f: {"type": "null"} for f in CARD_FIELDS}}},
    ]}


def check_card_fields(method: PaymentMethod, *card_fields: str | None) -> None:
    """For a model validator: ValueError unless the card fields are all given with method card
    and none otherwise."""
    if method == PaymentMethod.CARD and any(f is None for f in card_fields):
        raise ValueError("card purchases need card_number, card_expiry and card_cvc")
    if method != PaymentMethod.CARD and any(f is not None for f in card_fields):
        raise ValueError("card fields are only for method card")
