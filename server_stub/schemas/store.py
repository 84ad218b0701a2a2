"""The store's models: request bodies (strict: unknown fields and wrong types
are 422) and, below them, the answers (one family per entity)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, RootModel

from license_agent.codes import LicenseKind

from ..network.open_money import OpenKind
from ..vocabulary import AccountStatus, ItemAction, OfferKind, OpenOrderStatus, OrderPayment, OrderStatus, RentalUnit
from .common import FROM_JSON, SPACES, Absent, Id, Problem, ShortageProblem, StrictModel, no_default

DeviceIdText = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="hex device id (32 characters)")]
Quantity = Annotated[int, Field(ge=1, le=1_000_000_000)]
Tokens = Annotated[int, Field(ge=1, le=1_000_000)]
# a name: 1-100 characters, not only spaces (the server strips them), no NUL
ShortText = Annotated[str, Field(min_length=1, max_length=100, pattern=rf"^[^\x00]*[^\x00{SPACES}][^\x00]*$")]
LongText = Annotated[str, Field(max_length=4000)]


class OrderItemIn(StrictModel):
    """An order item. Rules that depend on the offer (which JSON Schema cannot
    see), answered 422 when broken: a rental offer needs a `quantity` that is
    one of its tiers; a purchase or convert offer takes none; a convert item
    needs the `license_id` of the rental it makes permanent."""

    offer_id: Id
    quantity: Quantity | None = Field(None, description="the tier: days, uses or processings (rentals only)")
    license_id: Id | None = Field(None, description="extend (rental) or convert this license")


Items = Annotated[list[OrderItemIn], Field(max_length=50)]


_PAYMENT = Field(OrderPayment.CLOSED, description="closed: this member's tokens; open: open tokens at the MSP; "
                 "auto: this member's tokens first, the rest of each item in open tokens")


class QuoteCreate(StrictModel):
    items: Annotated[list[OrderItemIn], Field(min_length=1, max_length=50)]
    device_id: DeviceIdText | None = None
    payment: Annotated[OrderPayment, FROM_JSON] = _PAYMENT


class OrderCreate(StrictModel):
    items: Annotated[list[OrderItemIn], Field(min_length=1, max_length=50)]
    device_id: DeviceIdText
    installed_product_ids: Annotated[list[Id], Field(max_length=50)] = []
    payment: Annotated[OrderPayment, FROM_JSON] = _PAYMENT


class CancelOrderIn(StrictModel):
    reason: ShortText


class OrderListPut(StrictModel):
    items: Items


class DeviceCreate(StrictModel):
    public_key: Annotated[str, Field(min_length=44, max_length=100, pattern=r"^[ \t\r\n]*[A-Za-z0-9+/]{43}=[ \t\r\n]*$",
                                     description="base64 of the raw 32-byte X25519 public key")]
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
    """The kind in the path decides the shape (JSON Schema cannot see it; 422
    otherwise): `purchase` and `convert` take `tokens` and no tiers; rentals take
    1-20 `tiers` with distinct quantities, at most 36500 days for `rent_time`."""

    tokens: Tokens | None = Field(None, description="purchase and convert: the price")
    tiers: Annotated[list[TierIn], Field(max_length=20)] = Field(
        default_factory=list, description="rentals: quantity (days, uses, processings) and price")
    low_threshold: Annotated[int, Field(ge=0, le=1_000_000_000)] | None = Field(
        None, description="'running low' warning: seconds for time, a count otherwise")
    active: bool = True


# ---------------------------------------------------------------- responses
#
# Plain BaseModel (not StrictModel): these describe what the server sends.
# Field order is the order the services build their dicts in, so the JSON
# keeps its key order. Keys the services sometimes leave out are optional
# fields with a default; their routes use `response_model_exclude_unset=True`,
# so an absent key stays absent (never `null`). Nullable keys that are always
# present (`license_id`, `latest_version`, `expires_at` ...) have no default.
# Datetimes are aware UTC, written RFC 3339 by pydantic ("...Z") as before
# (POST /v1/orders and POST /v1/devices answer through jsonable_encoder: "+00:00").



# -- catalog

class CategoryOut(BaseModel):
    """A category as the admin routes answer it."""

    id: int
    name: str
    description: str
    position: int


class CategoryListed(CategoryOut):
    """GET /v1/categories: with the number of active products."""

    product_count: int


class TierOut(BaseModel):
    quantity: int = Field(description="days, uses or processings granted")
    tokens: int
    cash_cents: int


class OfferOut(BaseModel):
    """`purchase`/`convert` carry `tokens, cash_cents`; rentals carry `tiers, unit`.
    The other pair is absent (not null)."""

    id: int
    product_id: int
    kind: OfferKind
    active: bool
    low_threshold: int | None
    tiers: list[TierOut] = Absent("rentals only")
    unit: RentalUnit = Absent("rentals only")
    tokens: int | None = Absent("purchase and convert only")
    cash_cents: int = Absent("purchase and convert only")


class VersionOut(BaseModel):
    id: int
    version: str
    file_name: str
    sha256: str
    size: int
    signed_package: bool
    published_at: datetime


class ProductOut(BaseModel):
    id: int
    name: str
    category_id: int
    description: str
    publisher: str
    on_sale: bool
    active: bool
    store_url: str
    offers: list[OfferOut]
    latest_version: VersionOut | None
    token_price_cents: int


class ProductDetailOut(ProductOut):
    """GET /v1/products/{id}: with every published version, newest first."""

    versions: list[VersionOut]


class VendorKeyEntry(BaseModel):
    kid: str
    public_key: str = Field(description="base64 raw Ed25519")
    current: bool
    retired_at: datetime | None = Field(None, description="absent on the current key",
                                        json_schema_extra=no_default)


class VendorKeyOut(BaseModel):
    kid: str = Field(description="the key new codes and packages are signed with")
    public_key: str = Field(description="base64 raw Ed25519")
    keys: list[VendorKeyEntry] = Field(description="every key the agent should trust, the current one first")


# -- devices

class DeviceOut(BaseModel):
    id: int
    device_id: str = Field(description="hex of the first 16 bytes of SHA-256 of the public key")
    name: str
    public_key: str = Field(description="base64 raw X25519")
    created_at: datetime


class DeviceListed(DeviceOut):
    """GET /v1/devices: with the number of licenses bound to the device."""

    license_count: int


class DeviceInUseProblem(Problem):
    """409: licenses are bound to the device."""

    license_count: int


# -- quotes, orders, receipts, the saved order list

class QuoteItemOut(BaseModel):
    offer_id: int
    product_id: int
    product_name: str
    kind: OfferKind
    quantity: int | None
    tokens: int
    cash_cents: int
    action: ItemAction
    license_id: int | None = Field(description="the license extended or converted; null for a new one")
    on_sale: bool
    open_kinds: list[OpenKind] = Absent("payment open or auto: the open kinds that can pay this item here")
    split: SplitOut = Absent("payment open or auto")


class SplitOut(BaseModel):
    closed_tokens: int = Field(description="paid with this member's tokens")
    open_units: int | None = Field(description="the rest in open units; null when the MSP's unit is unknown")


class OpenPortionOut(BaseModel):
    line: int
    lot_id: int
    kind: OpenKind
    issuer: str | None
    tokens: int


class OpenPlanOut(BaseModel):
    """The MSP's plan (FIG 20A/B), nothing held."""

    portions: list[OpenPortionOut]
    change: list[OpenPortionOut]
    short_units: int
    helpful_kinds: list[OpenKind]


class QuoteOut(BaseModel):
    """FIG 8: RT, AT and what would remain."""

    required_tokens: int
    available_tokens: int
    remaining_tokens: int
    payable: bool
    shortage: int
    cash_cents: int
    token_price_cents: int
    account_status: AccountStatus
    exact_actions: bool
    device_id: str | None
    items: list[QuoteItemOut]
    payment: OrderPayment = Absent("payment open or auto")
    closed_tokens: int = Absent("payment open or auto: this member's tokens the order would take")
    open_units: int | None = Absent("payment open or auto: open units the order would take")
    unit_value_cents: int | None = Absent("payment open or auto: the open unit's cash value")
    open_plan: OpenPlanOut | None = Absent("payment open or auto: the MSP's plan; null when none")
    open_plan_error: str | None = Absent("payment open or auto: why there is no plan")


class ReceiptItemOut(BaseModel):
    offer_id: int
    product_id: int
    product_name: str
    kind: OfferKind
    action: ItemAction
    quantity: int | None
    tokens: int
    cash_cents: int
    license_id: int


class DeliveryOut(BaseModel):
    """FIG 9: one per license changed. A product not in `installed_product_ids`
    (with a published version) also gets `download_url, version, sha256, size,
    file_name`; an installed one has none of these keys."""

    product_id: int
    product_name: str
    license_id: int
    serial: int
    kind: LicenseKind
    device_id: str
    kid: str
    authorization_code: str
    installed: bool
    download_url: str = Absent("only when not installed")
    version: str = Absent("only when not installed")
    sha256: str = Absent("only when not installed")
    size: int = Absent("only when not installed")
    file_name: str = Absent("only when not installed")


class ReceiptOut(BaseModel):
    id: int
    status: OrderStatus
    created_at: datetime
    device_id: str
    required_tokens: int
    available_tokens: int
    remaining_tokens: int
    balance_after: int
    token_price_cents: int
    cash_cents: int
    items: list[ReceiptItemOut]
    deliveries: list[DeliveryOut]
    payment: OrderPayment
    paid: list[PaidOut] = Field(description="what paid the order: this member's tokens (kind `closed`) and "
                                            "open tokens per kind and issuer; empty while pending")
    open_balance_after: dict[str, int] | None = Absent("open or auto orders: open tokens left per kind, "
                                                       "when the MSP told them")
    open_units: int = Absent("open or auto orders that took open tokens")
    open_status: OpenOrderStatus = Absent("open or auto orders that took open tokens")
    operation_id: str = Absent("open or auto orders that took open tokens: the MSP's operation")


class PaidOut(BaseModel):
    asset: str = Field(description="`token:<member>` for this member's tokens, else the open asset")
    kind: str = Field(description="`closed`, or an open kind")
    issuer: str | None
    tokens: int


class AdminReceiptOut(ReceiptOut):
    user_id: int


class OrderListItemOut(BaseModel):
    """A saved item as it was put: `quantity` and `license_id` only when given."""

    offer_id: int
    quantity: int = Absent("absent when not given")
    license_id: int = Absent("absent when not given")


class OrderListOut(BaseModel):
    items: list[OrderListItemOut]
    updated_at: datetime | None


# -- licenses

class LicenseOut(BaseModel):
    """A license and the totals granted."""

    id: int
    product_id: int
    product_name: str
    kind: LicenseKind
    serial: int
    device_id: str | None
    device_name: str | None
    starts_at: datetime
    expires_at: datetime | None
    uses: int | None
    processings: int | None
    low_threshold: int | None
    store_url: str
    active: bool
    created_at: datetime
    updated_at: datetime


class LicenseCodeOut(BaseModel):
    license_id: int
    product_id: int
    serial: int
    device_id: str
    kid: str
    authorization_code: str


class OpenShortageProblem(ShortageProblem):
    """402 (`type` .../insufficient-tokens) on an order paid in open tokens: the MSP's plan
    does not pay the open part; nothing is held. FIG 8's numbers are the order's and the
    closed tokens it would take."""

    reason: Literal["short"]
    short_units: int = Field(description="the open units the customer's lots are short of")
    helpful_kinds: list[OpenKind] = Field(description="the open kinds that would pay the rest here")


class OrderShortageProblem(RootModel[OpenShortageProblem | ShortageProblem]):
    """402 on POST /v1/orders: short of tokens (ShortageProblem), or, paid in open tokens,
    short at the MSP (OpenShortageProblem, told apart by `short_units`). anyOf, not oneOf:
    an open short is also a valid ShortageProblem (problems allow extra members)."""


class WrongDeviceProblem(Problem):
    """409: the license is bound to another of the owner's devices."""

    bound_device_id: str


# -- admin

class KeyRotatedOut(BaseModel):
    kid: str
    public_key: str = Field(description="base64 raw Ed25519")
    previous_kid: str
    created_at: datetime


class SalesLineOut(BaseModel):
    product_id: int
    product_name: str
    kind: OfferKind
    items_sold: int
    tokens: int
    cash_cents: int


class SalesReportOut(BaseModel):
    orders: int
    tokens: int
    lines: list[SalesLineOut]
