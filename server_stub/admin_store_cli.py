"""`tokenrent-server admin ...` commands for the store: catalog, offers,
publishing program files, signing-key rotation, the sales report, cancelling an order.
(Registered in admin_registry's table; admin_cli imports this module.)"""
from __future__ import annotations

from datetime import datetime

from .admin_registry import arg, command
from .services import catalog, open_orders, orders, signing_keys
from .services.errors import ApiError
from .vocabulary import OfferKind

def _tier(text: str) -> tuple[int, int]:
    q, sep, t = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return int(q), int(t)
    except ValueError:
        raise ApiError(f"--tier wants QUANTITY=TOKENS, e.g. 1000=80, not {text!r}") from None


def _aware(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(f"not an ISO time: {text!r}") from None
    if t.tzinfo is None:
        raise ApiError("times need a UTC offset, e.g. 2027-01-01T00:00:00+00:00")
    return t


def _product(db, product_id: int) -> dict:
    return catalog.product_views(db, [catalog.get_product(db, product_id, include_inactive=True)],
                                 include_inactive_offers=True)[0]


@command("list-categories", "list the store's categories")
def _list_categories(db, a):
    return catalog.list_categories(db)


@command("add-category", "add a store category",
         arg("name"), arg("--description", default=""), arg("--position", type=int, default=None))
def _add_category(db, a):
    return catalog.category_view(catalog.create_category(db, a.name, a.description, a.position))


@command("edit-category", "rename, describe or move a category",
         arg("category_id", type=int), arg("--name"), arg("--description"), arg("--position", type=int))
def _edit_category(db, a):
    return catalog.category_view(catalog.update_category(db, a.category_id, a.name, a.description, a.position))


@command("list-products", "list every product with its offers", arg("--category", type=int, default=None))
def _list_products(db, a):
    return catalog.list_products(db, a.category, include_inactive=True)


@command("add-product", "add a product to a category",
         arg("name"), arg("--category", type=int, required=True), arg("--description", default=""),
         arg("--publisher", default=""), arg("--on-sale", action="store_true"),
         arg("--inactive", action="store_true", help="not listed or orderable yet"))
def _add_product(db, a):
    p = catalog.create_product(db, a.category, a.name, a.description, a.publisher, a.on_sale, not a.inactive)
    return _product(db, p.id)


@command("edit-product", "change a product",
         arg("product_id", type=int), arg("--name"), arg("--category", type=int), arg("--description"),
         arg("--publisher"), arg("--on-sale", dest="on_sale", action="store_const", const=True),
         arg("--not-on-sale", dest="on_sale", action="store_const", const=False),
         arg("--active", dest="active", action="store_const", const=True),
         arg("--inactive", dest="active", action="store_const", const=False))
def _edit_product(db, a):
    catalog.update_product(db, a.product_id, category_id=a.category, name=a.name, description=a.description,
                           publisher=a.publisher, on_sale=a.on_sale, active=a.active)
    return _product(db, a.product_id)


@command("set-offer", "create or replace a product's offer of one kind",
         arg("product_id", type=int), arg("kind", choices=list(OfferKind)),
         arg("--tokens", type=int, help="purchase / convert price"),
         arg("--tier", action="append", default=[], metavar="QUANTITY=TOKENS",
             help="rentals, repeat: days / uses / processings = tokens, e.g. --tier 1000=80"),
         arg("--low-threshold", type=int, help="'running low' warning: seconds for time, count otherwise"),
         arg("--inactive", action="store_true", help="withdraw the offer"))
def _set_offer(db, a):
    offer = catalog.put_offer(db, a.product_id, a.kind, a.tokens, [_tier(t) for t in a.tier],
                              a.low_threshold, not a.inactive)
    return catalog.offer_detail(db, offer)


@command("publish", "publish a product version's file (a signed TokenRent package names its own "
                    "product and version; other files need --product and --version)",
         arg("file"), arg("--product", type=int, default=None), arg("--version", default=None))
def _publish(db, a):
    v = catalog.publish(db, a.file, a.product, a.version)
    return {"product_id": v.product_id, **catalog.version_view(v)}


@command("vendor-key", "show the current signing key id and every trusted public key")
def _vendor_key(db, a):
    signing_keys.ensure_key(db)
    return signing_keys.trusted_keys(db)


@command("rotate-key", "new signing key for new codes; the old public key stays trusted")
def _rotate(db, a):
    return signing_keys.rotate(db)


@command("sales-report", "products sold: items, tokens, cash per product and kind",
         arg("--since"), arg("--until"))
def _sales(db, a):
    return orders.sales_report(db, _aware(a.since), _aware(a.until))


@command("cancel-order", "cancel a completed order: its tokens back (open tokens refunded by the MSP), "
         "its licenses cancelled", arg("order_id", type=int), arg("--reason", required=True))
def _cancel_order(db, a):
    return open_orders.cancel_order(db, a.order_id, a.reason)
