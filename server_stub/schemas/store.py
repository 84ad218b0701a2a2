"""Request bodies of the store (strict: unknown fields and wrong types are 422)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .common import Id, StrictModel

DeviceIdText = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="hex device id (32 characters)")]
Quantity = Annotated[int, Field(ge=1, le=1_000_000_000)]
Tokens = Annotated[int, Field(ge=1, le=1_000_000)]
ShortText = Annotated[str, Field(min_length=1, max_length=100)]
LongText = Annotated[str, Field(max_length=4000)]
OfferKind = Literal["purchase", "rent_time", "rent_uses", "rent_processings", "convert"]


class OrderItemIn(StrictModel):
    offer_id: Id
    quantity: Quantity | None = Field(None, description="the tier: days, uses or processings (rentals only)")
    license_id: Id | None = Field(None, description="extend (rental) or convert this license")


Items = Annotated[list[OrderItemIn], Field(max_length=50)]


class QuoteCreate(StrictModel):
    items: Annotated[list[OrderItemIn], Field(min_length=1, max_length=50)]
    device_id: DeviceIdText | None = None


class OrderCreate(StrictModel):
    items: Annotated[list[OrderItemIn], Field(min_length=1, max_length=50)]
    device_id: DeviceIdText
    installed_product_ids: Annotated[list[Id], Field(max_length=50)] = []


class OrderListPut(StrictModel):
    items: Items


class DeviceCreate(StrictModel):
    public_key: Annotated[str, Field(min_length=1, max_length=100, description="base64 raw X25519 public key")]
    name: ShortText


class DeviceRename(StrictModel):
    name: ShortText


class CategoryCreate(StrictModel):
    name: ShortText
    description: LongText = ""
    position: Annotated[int, Field(ge=0, le=100_000)] | None = None


class CategoryUpdate(StrictModel):
    name: ShortText | None = None
    description: LongText | None = None
    position: Annotated[int, Field(ge=0, le=100_000)] | None = None


class ProductCreate(StrictModel):
    category_id: Id
    name: ShortText
    description: LongText = ""
    publisher: Annotated[str, Field(max_length=100)] = ""
    on_sale: bool = False
    active: bool = True


class ProductUpdate(StrictModel):
    category_id: Id | None = None
    name: ShortText | None = None
    description: LongText | None = None
    publisher: Annotated[str, Field(max_length=100)] | None = None
    on_sale: bool | None = None
    active: bool | None = None


class TierIn(StrictModel):
    quantity: Quantity
    tokens: Tokens


class OfferPut(StrictModel):
    tokens: Tokens | None = Field(None, description="purchase and convert: the price")
    tiers: Annotated[list[TierIn], Field(max_length=20)] = Field(
        default_factory=list, description="rentals: quantity (days, uses, processings) and price")
    low_threshold: Annotated[int, Field(ge=0, le=1_000_000_000)] | None = Field(
        None, description="'running low' warning: seconds for time, a count otherwise")
    active: bool = True
