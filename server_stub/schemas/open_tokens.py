"""Open tokens sold at this member (docs/api.md "Open tokens"; services/open_tokens.py)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..network.open_money import OpenKind
from ..services.open_tokens import MAX_GIFT_DAYS, MAX_GIFT_VALUE_CENTS, MAX_OPEN_TOKENS, GiveStatus, OpenPurchaseStatus
from ..vocabulary import PaymentMethod
from .common import FROM_JSON, StrictModel, state_no_nul
from .payment import CardCvc, CardExpiry, CardNumber, PaymentMethodIn, card_rule, check_card_fields


# ---------------------------------------------------------------- offers

class OpenOfferKind(BaseModel):
    kind: OpenKind
    issuer: str | None = Field(description="the brand id or group name; null for universal tokens")
    issuer_name: str
    discount_bp: int = Field(description="off face value, in basis points")
    price_cents_per_1000: int = Field(description="what 1,000 open tokens of this kind cost here")


class GiftCertificateOffer(BaseModel):
    expires_in_days: int = Field(description="a certificate bought now expires this many days after payment")


class OpenOffersOut(BaseModel):
    unit_value_cents: int = Field(description="the cash value of one open token (the MSP's unit)")
    kinds: list[OpenOfferKind]
    gift_certificate: GiftCertificateOffer


class GiftDaysUpdate(StrictModel):
    days: Annotated[int, Field(ge=1, le=MAX_GIFT_DAYS)]


# ---------------------------------------------------------------- purchases

class RecipientIn(StrictModel):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    full_name: Annotated[str, Field(min_length=1, max_length=100)]


def _open_purchase_rules(schema: dict[str, Any]) -> None:
    state_no_nul(schema)
    schema["allOf"] = [card_rule()]


class OpenPurchaseCreate(StrictModel):
    """Open tokens by `tokens`, a gift certificate by `value_cents` (a multiple of the
    open unit); `issuer` names the brand (manufacturer) or the group (group, one this
    store is in); `recipient` (gift certificates only) is a user of this store.
    Rules that depend on the MSP's catalog are refused with a 422 (or 403 for a
    group this store is not in)."""

    model_config = ConfigDict(json_schema_extra=_open_purchase_rules)

    kind: Annotated[OpenKind, FROM_JSON]
    tokens: Annotated[int, Field(ge=1, le=MAX_OPEN_TOKENS)] | None = None
    value_cents: Annotated[int, Field(ge=1, le=MAX_GIFT_VALUE_CENTS)] | None = None
    issuer: Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[^:\x00]+$")] | None = None
    method: PaymentMethodIn
    card_number: CardNumber = None
    card_expiry: CardExpiry = None
    card_cvc: CardCvc = None
    recipient: RecipientIn | None = None
    pin: Annotated[str, Field(min_length=1, max_length=12)]

    @model_validator(mode="after")
    def _card_fields(self) -> OpenPurchaseCreate:
        check_card_fields(self.method, self.card_number, self.card_expiry, self.card_cvc)
        return self


class RecipientOut(BaseModel):
    username: str
    full_name: str


class OpenLotOut(BaseModel):
    """A lot the MSP issued (its answer, as it gave it)."""

    model_config = ConfigDict(extra="allow")

    lot_id: int
    kind: OpenKind
    tokens: int


class GiftCertificateOut(BaseModel):
    value_cents: int
    expires_at: datetime | None
    code: str | None = Field(description="the redemption code: to its buyer only, once issued")
    id: int | None = Field(description="the MSP's certificate id")
    give_status: GiveStatus | None
    give_reason: str | None


class OpenPurchaseOut(BaseModel):
    id: int
    operation_id: str = Field(description="the MSP's operation (a gift certificate's id for giving it)")
    kind: OpenKind
    issuer: str | None
    tokens: int
    price_cents: int
    method: PaymentMethod
    status: OpenPurchaseStatus
    reason: str
    refund_due: bool = Field(description="the MSP refused after payment: the money is owed back to the buyer")
    invoice_number: str | None
    card_brand: str | None
    card_last4: str | None
    decline_code: str | None
    recipient: RecipientOut | None
    lots: list[OpenLotOut]
    created_at: datetime
    issued_at: datetime | None
    user_id: int
    gift_certificate: GiftCertificateOut | None


# ---------------------------------------------------------------- giving a certificate

class GiveIn(StrictModel):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    full_name: Annotated[str, Field(min_length=1, max_length=100)]
    pin: Annotated[str, Field(min_length=1, max_length=12)]


class GiveOut(BaseModel):
    operation_id: str = Field(description="this gift's operation at the MSP")
    gift_operation_id: str
    status: GiveStatus
    to_username: str | None
