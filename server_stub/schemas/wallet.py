from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from ..vocabulary import AccountStatus, PaymentMethod, PurchaseStatus, Role, TokenKind, TransferKind
from .common import FROM_JSON, Id, StrictModel, TokenCount, state_no_nul
from .payment import CardCvc, CardExpiry, CardNumber, PaymentMethodIn, card_rule, check_card_fields


class BundleOut(BaseModel):
    id: int
    name: str
    tokens: int
    discount_percent: float
    price_cents: int
    list_price_cents: int


class OffersOut(BaseModel):
    token_price_cents: int
    min_tokens: int
    preferred_discount_percent: float
    your_discount_percent: float
    bundles: list[BundleOut]
    payment_methods: list[PaymentMethod]


def _purchase_rules(schema: dict) -> None:
    """_one_amount, in the schema: exactly one of tokens and bundle_id; the card
    fields with method card and only then."""
    state_no_nul(schema)
    schema["allOf"] = [
        {"oneOf": [
            {"required": ["tokens"], "properties": {"tokens": {"type": "integer"}, "bundle_id": {"type": "null"}}},
            {"required": ["bundle_id"], "properties": {"bundle_id": {"type": "integer"}, "tokens": {"type": "null"}}},
        ]},
        card_rule(),
    ]


class TokenPurchaseCreate(StrictModel):
    """A card must also pass the Luhn check and not have expired (422 otherwise:
    JSON Schema cannot say either)."""

    model_config = ConfigDict(json_schema_extra=_purchase_rules)

    tokens: TokenCount | None = None
    bundle_id: Id | None = None
    method: PaymentMethodIn
    card_number: CardNumber = None
    card_expiry: CardExpiry = None
    card_cvc: CardCvc = None

    @model_validator(mode="after")
    def _one_amount(self):
        if (self.tokens is None) == (self.bundle_id is None):
            raise ValueError("give exactly one of tokens or bundle_id")
        check_card_fields(self.method, self.card_number, self.card_expiry, self.card_cvc)
        return self


class TokenPurchaseOut(BaseModel):
    id: int
    status: PurchaseStatus
    tokens: int
    bundle_id: int | None
    method: PaymentMethod
    amount_cents: int
    gross_cents: int
    discount_percent: float
    invoice_number: str | None
    card_brand: str | None
    card_last4: str | None
    decline_code: str | None = None
    created_at: datetime
    user_id: int
    available_tokens: int | None = None


class TransferCreate(StrictModel):
    to_username: Annotated[str, Field(min_length=1, max_length=64)]
    to_full_name: Annotated[str, Field(min_length=1, max_length=100)]
    tokens: TokenCount
    pin: Annotated[str, Field(min_length=1, max_length=12)]


class TransferOut(BaseModel):
    id: int
    tokens: int
    to_username: str
    available_tokens: int


class LedgerLine(BaseModel):
    id: int
    at: datetime
    kind: TransferKind
    memo: str
    tokens: int          # change of the spendable wallet (negative: out)
    held_change: int     # change of the tokens on hold
    token_kind: TokenKind | None
    balance_after: int | None


class LedgerOut(BaseModel):
    available_tokens: int
    entries: list[LedgerLine]


# ---- admin

class GrantCreate(StrictModel):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    tokens: TokenCount
    kind: Annotated[TokenKind, FROM_JSON] = TokenKind.STANDARD
    # RFC 3339 with an offset (strict models take it from a JSON string)
    expires_at: Annotated[AwareDatetime, Field(strict=False, description=(
        "RFC 3339 with an offset; in the future and at most 100 years away (else 422)"))] | None = None
    memo: Annotated[str, Field(max_length=200)] = ""


class PolicyUpdate(StrictModel):
    token_price_cents: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    min_tokens: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    preferred_discount_percent: Annotated[float, Field(ge=0, le=100)] | None = None
    registration_grant_tokens: Annotated[int, Field(ge=0, le=1_000_000)] | None = None


class BundleUpsert(StrictModel):
    name: Annotated[str, Field(min_length=1, max_length=50)]
    tokens: TokenCount
    discount_percent: Annotated[float, Field(ge=0, le=100)]
    active: bool = True


class UserFlagsUpdate(StrictModel):
    negative_limit: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    preferred: bool | None = None


class LedgerCheckOut(BaseModel):
    ok: bool
    totals: dict[str, int]
    mismatched_accounts: list[str]
    negative_wallets: list[str]


class GrantOut(BaseModel):
    username: str
    status: AccountStatus
    available_tokens: int


class BundleAdminOut(BaseModel):
    id: int
    name: str
    tokens: int
    discount_percent: float
    active: bool


class UserFlagsOut(BaseModel):
    id: int
    username: str
    negative_limit: int
    preferred: bool


class UserAdminOut(BaseModel):
    id: int
    username: str
    full_name: str
    role: Role
    status: AccountStatus
    preferred: bool
    negative_limit: int
