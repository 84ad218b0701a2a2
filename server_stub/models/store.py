"""The store (patent 002 FIG 6-10, kinds a-j): catalog, devices, licenses,
orders and their receipts, the saved order list, the vendor's public keys.

Prices are integer tokens; cash equivalents are computed from the token
policy when shown, and frozen into an order's receipt when it is placed.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..vocabulary import OrderStatus
from .base import Amount, Base, UTCDateTime, utcnow

# Offer kinds, item actions: server_stub.vocabulary; license kinds: license_agent.codes.LicenseKind.


class Category(Base):
    __tablename__ = "store_categories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)


class Product(Base):
    __tablename__ = "store_products"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("store_categories.id"), index=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    publisher: Mapped[str] = mapped_column(String(100), default="")
    on_sale: Mapped[bool] = mapped_column(Boolean, default=False)   # restricted tokens may pay
    active: Mapped[bool] = mapped_column(Boolean, default=True)     # listed and orderable
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProductVersion(Base):
    """A published program file for one version of a product."""

    __tablename__ = "store_product_versions"
    __table_args__ = (UniqueConstraint("product_id", "version", name="uq_store_product_versions_pv"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("store_products.id"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(200))
    storage_name: Mapped[str] = mapped_column(String(100))   # file under <data dir>/packages/
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    package_kid: Mapped[str | None] = mapped_column(String(16), nullable=True)  # signed package
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Offer(Base):
    """One way to buy a product; at most one offer of each kind per product."""

    __tablename__ = "store_offers"
    __table_args__ = (UniqueConstraint("product_id", "kind", name="uq_store_offers_product_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("store_products.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    tokens: Mapped[int | None] = mapped_column(Amount, nullable=True)          # purchase, convert
    low_threshold: Mapped[int | None] = mapped_column(Integer, nullable=True)   # rentals: "running low"
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class OfferTier(Base):
    __tablename__ = "store_offer_tiers"
    __table_args__ = (UniqueConstraint("offer_id", "quantity", name="uq_store_offer_tiers_q"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("store_offers.id", ondelete="CASCADE"), index=True)
    quantity: Mapped[int] = mapped_column(Amount)   # days, uses or processings granted
    tokens: Mapped[int] = mapped_column(Amount)


class Device(Base):
    """A user's registered computer (patent 003's designated client)."""

    __tablename__ = "store_devices"
    __table_args__ = (UniqueConstraint("user_id", "device_id", name="uq_store_devices_user_device"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    device_id: Mapped[str] = mapped_column(String(32))      # hex, first 16 bytes of SHA-256(public key)
    public_key: Mapped[str] = mapped_column(String(64))     # base64 raw X25519
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class License(Base):
    """What the user holds for a product on one device. Totals, never deltas;
    `serial` grows by one with every change (and so every new code)."""

    __tablename__ = "store_licenses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("store_products.id"), index=True)
    device_pk: Mapped[int] = mapped_column(ForeignKey("store_devices.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    serial: Mapped[int] = mapped_column(Integer, default=1)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    uses: Mapped[int | None] = mapped_column(Amount, nullable=True)
    processings: Mapped[int | None] = mapped_column(Amount, nullable=True)
    low_threshold: Mapped[int | None] = mapped_column(Integer, nullable=True)
    product_name: Mapped[str] = mapped_column(String(100), default="")   # as written in the codes
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # set when the order that made or changed it was cancelled (issue 12): no new codes
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Order(Base):
    """A placed order and its receipt (FIG 9, 10 step 911)."""

    __tablename__ = "store_orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    device_pk: Mapped[int | None] = mapped_column(ForeignKey("store_devices.id"), nullable=True)
    device_id: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=OrderStatus.COMPLETED)
    payment: Mapped[str] = mapped_column(String(8), default="closed")   # closed | open | auto (issue 12)
    required_tokens: Mapped[int] = mapped_column(Amount)
    available_tokens: Mapped[int] = mapped_column(Amount)    # AT before the order
    balance_after: Mapped[int] = mapped_column(Amount)       # new AT
    token_price_cents: Mapped[int] = mapped_column(Integer)
    cash_cents: Mapped[int] = mapped_column(Amount)
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_holds.id"), nullable=True)
    deliveries_json: Mapped[str] = mapped_column(Text, default="[]")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class OrderItem(Base):
    """One line of an order: the products-sold record (FIG 4 item 49)."""

    __tablename__ = "store_order_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("store_orders.id"), index=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("store_offers.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("store_products.id"), index=True)
    product_name: Mapped[str] = mapped_column(String(100))
    offer_kind: Mapped[str] = mapped_column(String(24))
    action: Mapped[str] = mapped_column(String(16))   # vocabulary.ItemAction
    quantity: Mapped[int | None] = mapped_column(Amount, nullable=True)
    tokens: Mapped[int] = mapped_column(Amount)
    cash_cents: Mapped[int] = mapped_column(Amount)
    license_id: Mapped[int] = mapped_column(ForeignKey("store_licenses.id"), index=True)


class SavedOrderList(Base):
    """FIG 10 step 907: the user's uncompleted order list, one per user."""

    __tablename__ = "store_order_lists"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    items_json: Mapped[str] = mapped_column(Text, default="[]")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VendorKey(Base):
    """The PUBLIC half of every signing key the vendor used (the private key
    lives only in the key file). All of them stay trusted after a rotation."""

    __tablename__ = "store_vendor_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kid: Mapped[str] = mapped_column(String(16), unique=True)
    public_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
