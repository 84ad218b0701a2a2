"""Quotes, orders, receipts, the saved order list (FIG 8, 9, 10).

One planner (`plan_items`) decides, item by item, the price and what the
item does to which license (new, extend, convert); the quote shows the plan,
the order carries it out:

    lock wallet -> plan -> hold tokens -> create/extend licenses -> issue codes
    -> post the hold -> receipt

all in one write transaction: a refusal or a failure anywhere voids the hold
and rolls everything back, so nothing is half done.
"""
from __future__ import annotations

import json
import sys
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from license_agent.codes import LicenseKind

from ..models.base import utcnow
from ..models.store import Device, License, Offer, OfferTier, Order, OrderItem, Product, SavedOrderList
from ..models.user import User
from ..vocabulary import LICENSE_KIND_OF_OFFER, TIERED_OFFER_KINDS, ItemAction, OfferKind, OrderPayment, OrderStatus
from . import ledger, licenses, open_orders
from .order_plan import Plan, PlannedItem, Target
from .accounts import require_active
from .catalog import download_url, latest_version
from .devices import owned as owned_device
from .errors import Conflict, Invalid, NotFound
from .idempotency import Outcome
from .pricing import cash_cents, token_price_cents

MAX_ITEMS = 50


def _item_fields(item) -> tuple[int, int | None, int | None]:
    if isinstance(item, dict):
        return item.get("offer_id"), item.get("quantity"), item.get("license_id")
    return item.offer_id, item.quantity, item.license_id


def _offer_and_price(db: Session, offer_id: int, quantity: int | None) -> tuple[Offer, Product, int]:
    """The orderable offer, its product and the price of `quantity`, in one query."""
    row = db.execute(
        select(Offer, Product, OfferTier.tokens)
        .join(Product, Product.id == Offer.product_id)
        .outerjoin(OfferTier, (OfferTier.offer_id == Offer.id) & (OfferTier.quantity == (quantity or 0)))
        .where(Offer.id == offer_id)
    ).first()
    if row is None or not row[0].active or not row[1].active:
        raise NotFound(f"no such offer: {offer_id}", offer_id=offer_id)
    offer, product, tier_tokens = row
    if offer.kind in TIERED_OFFER_KINDS:
        if quantity is not None and tier_tokens is not None:
            return offer, product, tier_tokens
        choices = list(db.scalars(select(OfferTier.quantity).where(OfferTier.offer_id == offer.id)
                                  .order_by(OfferTier.quantity)))
        if quantity is None:
            raise Invalid(f"offer {offer.id} is a rental: give a quantity, one of {choices}", tiers=choices)
        raise Invalid(f"quantity {quantity} is not a tier of offer {offer.id}; choose one of {choices}",
                      tiers=choices)
    if quantity is not None:
        raise Invalid(f"offer {offer.id} ({offer.kind}) takes no quantity")
    return offer, product, offer.tokens


def plan_items(db: Session, user_id: int, items, device: Device | None) -> Plan:
    """Price every item and decide what it does. Raises a 4xx ApiError on the
    first bad item (unknown or foreign offer/license, wrong tier, ...)."""
    if not items:
        raise Invalid("the order has no items")
    if len(items) > MAX_ITEMS:
        raise Invalid(f"at most {MAX_ITEMS} items in one order")
    by_license: dict[int, Target] = {}
    by_product: dict[int, Target] = {}   # the licenses on this order's device
    plan = Plan()
    for n, item in enumerate(items, 1):
        offer_id, quantity, license_id = _item_fields(item)
        offer, product, tokens = _offer_and_price(db, offer_id, quantity)
        target = None
        if license_id is not None:
            target = by_license.get(license_id)
            if target is None:
                lic = licenses.owned(db, user_id, license_id)
                if lic.cancelled_at is not None:
                    raise Conflict(f"item {n}: license {lic.id} was cancelled with its order")
                if lic.product_id != product.id:
                    raise Invalid(f"item {n}: license {lic.id} is for another product than offer {offer.id}")
                if device is not None and lic.device_pk != device.id:
                    raise Conflict(f"item {n}: license {lic.id} is bound to another of your devices; "
                                   f"order for that device")
                target = by_product.get(product.id)
                if target is None or target.license is not lic:
                    target = Target(product, lic.kind, lic)
                by_license[lic.id] = target
                by_product.setdefault(product.id, target)
        elif device is not None:
            target = by_product.get(product.id)
            if target is None:
                lic = db.scalar(select(License).where(License.user_id == user_id, License.product_id == product.id,
                                                      License.device_pk == device.id, License.cancelled_at.is_(None))
                                      .order_by(License.id).limit(1))
                if lic is not None:
                    target = by_license.setdefault(lic.id, Target(product, lic.kind, lic))
                    by_product[product.id] = target
        action = _decide(n, offer, target)
        if target is None:
            target = Target(product, LICENSE_KIND_OF_OFFER[offer.kind])
            by_product[product.id] = target
        if action == ItemAction.CONVERT:
            target.kind = LicenseKind.PERMANENT
        target.low_threshold = offer.low_threshold if offer.kind in TIERED_OFFER_KINDS else target.low_threshold
        plan.items.append(PlannedItem(offer, product, quantity, tokens, action, target))
    return plan


def _decide(n: int, offer: Offer, target: Target | None) -> ItemAction:
    """What an item does to the license it meets (None: no license yet)."""
    wanted = LICENSE_KIND_OF_OFFER.get(offer.kind)
    name = offer.kind.replace("_", " ")
    if target is None:
        if offer.kind == OfferKind.CONVERT:
            raise Invalid(f"item {n}: a convert item needs the license_id of your rental to convert")
        return ItemAction.NEW
    held = target.kind
    ref = f"license {target.license.id}" if target.license is not None else "the license this order creates"
    if held == LicenseKind.PERMANENT:
        raise Conflict(f"item {n}: {ref} for {target.product.name} is already permanent; "
                       f"there is nothing to {'convert' if offer.kind == OfferKind.CONVERT else 'buy'}")
    if offer.kind in (OfferKind.CONVERT, OfferKind.PURCHASE):
        return ItemAction.CONVERT  # e, f, g: the rental becomes permanent
    if held != wanted:
        raise Conflict(f"item {n}: {ref} for {target.product.name} is a {held} rental; a {name} offer "
                       f"cannot extend it")
    return ItemAction.EXTEND       # h, i, j


# ---------------------------------------------------------------- quote (FIG 8)

def _only_device(db: Session, user_id: int) -> Device | None:
    """The user's one registered device; None when there are none or several."""
    found = db.scalars(select(Device).where(Device.user_id == user_id).limit(2)).all()
    return found[0] if len(found) == 1 else None


def quote(db: Session, user: User, items, device_id: str | None = None,
          payment: str = OrderPayment.CLOSED) -> dict:
    # The action an item takes depends on the device's licenses: without a
    # device_id, a user with one computer still gets the exact answer.
    device = owned_device(db, user.id, device_id) if device_id else _only_device(db, user.id)
    plan = plan_items(db, user.id, items, device)
    wallet = ledger.load_wallet(db, user)
    price = token_price_cents(db)
    required, available = plan.required, wallet.total()
    capacity = ledger.spend_capacity(wallet, plan.spend_lines())
    out = {"required_tokens": required, "available_tokens": available,
           "remaining_tokens": available - required,
           "payable": required <= capacity, "shortage": max(0, required - capacity),
           "cash_cents": cash_cents(required, price), "token_price_cents": price,
           "account_status": user.status, "exact_actions": device is not None,
           "device_id": device.device_id if device is not None else None,
           "items": [i.view(price) for i in plan.items]}
    if payment != OrderPayment.CLOSED:   # the closed quote asks the MSP nothing
        open_orders.quote_extras(db, user, plan, wallet, payment, price, out)
    return out


# ---------------------------------------------------------------- order (FIG 9, 10)

def _deliveries(plan: Plan, device: Device, installed: set[int], codes: dict[int, tuple[str, str]],
                versions: dict) -> list[dict]:
    """FIG 9: one delivery per license changed; a product not installed also
    gets its download link."""
    out, seen = [], set()
    for item in plan.items:
        lic = item.target.license
        if lic.id in seen:
            continue
        seen.add(lic.id)
        code, kid = codes[lic.id]
        d = {"product_id": item.product.id, "product_name": item.product.name, "license_id": lic.id,
             "serial": lic.serial, "kind": lic.kind, "device_id": device.device_id, "kid": kid,
             "authorization_code": code, "installed": item.product.id in installed}
        if item.product.id not in installed:
            v = versions.get(item.product.id)
            if v is not None:
                d.update(download_url=download_url(item.product.id), version=v.version, sha256=v.sha256,
                         size=v.size, file_name=v.file_name)
        out.append(d)
    return out


def place_order(db: Session, user_id: int, items, device_id: str, installed_product_ids,
                payment: str = OrderPayment.CLOSED, idempotency_key: str | None = None) -> Outcome:
    user = ledger.lock_wallets(db, user_id)[user_id]
    require_active(user)
    device = owned_device(db, user_id, device_id)
    plan = plan_items(db, user_id, items, device)
    price = token_price_cents(db)
    available = ledger.available_tokens(db, user)
    if payment != OrderPayment.CLOSED and open_orders.needs_open(db, user, plan, payment, price):
        return open_orders.start_order(db, user, device, plan, payment, price, available,
                                       list(installed_product_ids or []), idempotency_key)
    installed = set(installed_product_ids or [])
    versions = {i.product.id: latest_version(db, i.product.id) for i in plan.items if i.product.id not in installed}
    now = utcnow()
    order = Order(user_id=user_id, device_pk=device.id, device_id=device.device_id, status=OrderStatus.COMPLETED,
                  payment=payment,
                  required_tokens=plan.required, available_tokens=available, balance_after=available,
                  token_price_cents=price, cash_cents=cash_cents(plan.required, price), created_at=now)
    db.add(order)
    db.flush()
    what = ", ".join(dict.fromkeys(i.product.name for i in plan.items))
    hold = ledger.hold(db, user, plan.spend_lines(), reference=f"order:{order.id}",  # 402 when short
                       memo=f"order {order.id}: {what}")
    try:
        codes = _apply(db, user_id, plan, device, now)
    except BaseException:
        ledger.void_hold(db, hold.id, memo=f"order {order.id} failed")
        raise   # and the transaction rolls back: no order, no license, no tokens moved
    ledger.post_hold(db, hold.id, memo=f"order {order.id}")
    order_items = [OrderItem(order_id=order.id, offer_id=item.offer.id, product_id=item.product.id,
                             product_name=item.product.name, offer_kind=item.offer.kind, action=item.action,
                             quantity=item.quantity, tokens=item.tokens, cash_cents=cash_cents(item.tokens, price),
                             license_id=item.target.license.id) for item in plan.items]
    db.add_all(order_items)
    deliveries = _deliveries(plan, device, installed, codes, versions)
    order.hold_id = hold.id
    order.balance_after = available - plan.required   # the hold took exactly this; posting moves it on
    order.deliveries_json = json.dumps(deliveries)
    # FIG 10: the saved list is kept until it is ordered
    db.execute(delete(SavedOrderList).where(SavedOrderList.user_id == user_id))
    db.flush()
    return Outcome(201, receipt(db, order, order_items, deliveries))


def _apply(db: Session, user_id: int, plan: Plan, device: Device, now: datetime) -> dict[int, tuple[str, str]]:
    """Create or change the licenses, then issue one code per changed license."""
    for item in plan.items:
        t = item.target
        if t.license is None:
            t.license = licenses.start(db, user_id, item.product, device, LICENSE_KIND_OF_OFFER[item.offer.kind], now)
        if item.action == ItemAction.CONVERT:
            licenses.make_permanent(t.license)
        elif item.offer.kind in TIERED_OFFER_KINDS:
            licenses.add_quantity(t.license, item.quantity, now)
    codes = {}
    for t in {id(i.target): i.target for i in plan.items}.values():
        licenses.bump(t.license, t.product, t.low_threshold, now)
        codes[t.license.id] = licenses.issue(t.license, device)
    return codes


# ---------------------------------------------------------------- receipts

def receipt(db: Session, order: Order, items: list[OrderItem] | None = None,
            deliveries: list[dict] | None = None) -> dict:
    if items is None:
        items = db.scalars(select(OrderItem).where(OrderItem.order_id == order.id).order_by(OrderItem.id)).all()
    out = {
        "id": order.id, "status": order.status, "created_at": order.created_at,
        "device_id": order.device_id,
        "required_tokens": order.required_tokens, "available_tokens": order.available_tokens,
        "remaining_tokens": order.balance_after, "balance_after": order.balance_after,
        "token_price_cents": order.token_price_cents, "cash_cents": order.cash_cents,
        "items": [{"offer_id": i.offer_id, "product_id": i.product_id, "product_name": i.product_name,
                   "kind": i.offer_kind, "action": i.action, "quantity": i.quantity, "tokens": i.tokens,
                   "cash_cents": i.cash_cents, "license_id": i.license_id} for i in items],
        "deliveries": deliveries if deliveries is not None else json.loads(order.deliveries_json or "[]"),
    }
    open_orders.receipt_extras(db, order, out)
    return out


def owned_order(db: Session, user_id: int, order_id: int) -> Order:
    order = db.get(Order, order_id)
    if order is None or order.user_id != user_id:
        raise NotFound("no such order")
    return order


def list_orders(db: Session, user_id: int, limit: int = 100, before_id: int | None = None) -> list[dict]:
    q = select(Order).where(Order.user_id == user_id)
    if before_id is not None:
        q = q.where(Order.id < before_id)
    rows = db.scalars(q.order_by(Order.id.desc()).limit(limit)).all()
    return [receipt(db, o) for o in rows]


def sales_report(db: Session, since: datetime | None = None, until: datetime | None = None) -> dict:
    """Products-sold records (FIG 4 item 49, FIG 10 step 911) for the vendor."""
    q = (select(OrderItem.product_id, OrderItem.product_name, OrderItem.offer_kind,
                func.count(), func.sum(OrderItem.tokens), func.sum(OrderItem.cash_cents))
         .join(Order, Order.id == OrderItem.order_id)
         .where(Order.status == OrderStatus.COMPLETED)   # not pending, failed or cancelled ones
         .group_by(OrderItem.product_id, OrderItem.product_name, OrderItem.offer_kind)
         .order_by(OrderItem.product_id, OrderItem.offer_kind))
    if since is not None:
        q = q.where(Order.created_at >= since)
    if until is not None:
        q = q.where(Order.created_at < until)
    rows = [{"product_id": r[0], "product_name": r[1], "kind": r[2], "items_sold": int(r[3]),
             "tokens": int(r[4] or 0), "cash_cents": int(r[5] or 0)} for r in db.execute(q).all()]
    oq = (select(func.count(), func.coalesce(func.sum(Order.required_tokens), 0))
          .where(Order.status == OrderStatus.COMPLETED))
    if since is not None:
        oq = oq.where(Order.created_at >= since)
    if until is not None:
        oq = oq.where(Order.created_at < until)
    count, tokens = db.execute(oq).one()
    return {"orders": int(count), "tokens": int(tokens), "lines": rows}


# ---------------------------------------------------------------- saved order list (FIG 10, 906-907)

def get_order_list(db: Session, user_id: int) -> dict:
    saved = db.get(SavedOrderList, user_id)
    if saved is None:
        return {"items": [], "updated_at": None}
    return {"items": json.loads(saved.items_json), "updated_at": saved.updated_at}


def put_order_list(db: Session, user_id: int, items: list[dict]) -> dict:
    if len(items) > MAX_ITEMS:
        raise Invalid(f"at most {MAX_ITEMS} items")
    saved = db.get(SavedOrderList, user_id)
    if not items:
        if saved is not None:
            db.delete(saved)
            db.flush()
        return {"items": [], "updated_at": None}
    for item in items:           # only the user's own, existing offers and licenses are kept
        _offer_and_price(db, item["offer_id"], item.get("quantity"))
        if item.get("license_id") is not None:
            licenses.owned(db, user_id, item["license_id"])
    now = utcnow()
    if saved is None:
        saved = SavedOrderList(user_id=user_id)
        db.add(saved)
    saved.items_json = json.dumps(items)
    saved.updated_at = now
    db.flush()
    return {"items": items, "updated_at": now}


open_orders.connect_orders(sys.modules[__name__])
