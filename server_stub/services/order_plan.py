"""What an order plans (services/orders.plan_items): each item's price and the
license it acts on. Apart from orders.py so that open_orders (which orders
calls) can name these types without importing orders."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..models.store import License, Offer, Product
from ..vocabulary import ItemAction
from . import ledger
from .pricing import cash_cents


@dataclass
class Target:
    """The license an item acts on: an existing row, or one this order creates."""

    product: Product
    kind: str                       # the license kind after the items planned so far
    license: License | None = None
    low_threshold: int | None = None


@dataclass
class PlannedItem:
    offer: Offer
    product: Product
    quantity: int | None
    tokens: int
    action: ItemAction
    target: Target

    def view(self, price_cents: int) -> dict:
        return {"offer_id": self.offer.id, "product_id": self.product.id, "product_name": self.product.name,
                "kind": self.offer.kind, "quantity": self.quantity, "tokens": self.tokens,
                "cash_cents": cash_cents(self.tokens, price_cents), "action": self.action,
                "license_id": self.target.license.id if self.target.license else None,
                "on_sale": self.product.on_sale}


@dataclass
class Plan:
    items: list[PlannedItem] = field(default_factory=list)

    @property
    def required(self) -> int:
        return sum(i.tokens for i in self.items)

    def spend_lines(self) -> list[ledger.SpendLine]:
        return [ledger.SpendLine(tokens=i.tokens, on_sale=i.product.on_sale) for i in self.items]
