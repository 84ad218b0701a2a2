"""The open-token part of quotes and orders at this member (issue 12; docs/mall.md
"Orders paid with open tokens at a member").

- `split`: what of each line this member's own tokens pay (auto: as many as the
  user can spend, never the vendor's negative draw) and the rest in open units.
- Quotes add per item the kinds that can pay it and the split, and the MSP's plan
  (signed `open-plans`, 3 s; else `open_plan: null` and `open_plan_error`).
- An order needing open units is a saga: one transaction writes the order
  `pending`, the closed hold, the OrderOpenPayment row and the `open.authorize`
  message; the MSP's answer (handler below, in the outbox's write) completes it
  (licenses, codes, the hold posted, `open.confirm` queued) or fails it (hold
  voided), and upgrades the stored idempotent 202 to that final answer.
- Cancel (the operator): closed tokens back to their lots, `open.refund` to the
  MSP, the order's licenses cancelled.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

import requests
from fastapi.encoders import jsonable_encoder
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ..core.config import get_settings
from ..db import on_commit, read_session, session_cache
from ..logs import log
from ..models.base import utcnow
from ..models.idempotency import IdempotencyRecord
from ..models.ledger import LedgerAccount, LedgerHold, LedgerTransfer
from ..models.mall import MallLink, MallOutboxMessage
from ..models.open_tokens import OrderOpenPayment
from ..models.store import Device, License, Order, OrderItem, SavedOrderList
from ..models.user import User
from ..network import open_money, outbox
from ..network.client import MallClient
from ..network.directory import MSP_ID
from ..network.open_money import OpenKind
from ..network.types import Answer, Unreachable
from ..vocabulary import HoldStatus, OpenOrderStatus, OrderPayment, OrderStatus, TokenKind, TransferKind
from . import ledger, mall, mall_notices
from .errors import ApiError, Conflict, NotFound
from .idempotency import Outcome
from .order_plan import Plan
from .pricing import cash_cents

if TYPE_CHECKING:
    from types import ModuleType

_orders_module: ModuleType | None = None


def connect_orders(module: ModuleType) -> None:
    """services/orders hands itself over at import: it calls this module for an order's open
    part, and this module completes an authorized order with its steps (not an import: a cycle)."""
    global _orders_module
    _orders_module = module


def _orders() -> Any:
    if _orders_module is None:
        raise RuntimeError("services.orders is not imported")
    return _orders_module

PLAN_TIMEOUT = 3.0          # a quote never waits longer for the MSP's plan
AUTHORIZE_WAIT = 8.0        # an order waits this long for the MSP's authorization, then answers 202
CATALOG_MAX_AGE = 60.0      # brand-products and groups are read again after a minute
COMPLETE_MARGIN = timedelta(minutes=5)   # never complete within 5 minutes of the MSP's hold expiry
MAX_ORDER_WAIT = 10.0       # GET /v1/orders/{id}?wait=


class OpenMessage:
    """The outbox kinds of this saga (the answer handlers below)."""

    AUTHORIZE = "open.authorize"
    CONFIRM = "open.confirm"
    VOID = "open.void"
    REFUND = "open.refund"


PAYMENTS_PATH = "/v1/mall/open-payments"
RESULTS_PATH = "/v1/mall/open-payment-results"
REFUNDS_PATH = "/v1/mall/open-refunds"
PLANS_PATH = "/v1/mall/open-plans"


class MspUnavailable(ApiError):
    status_code = 503


class OpenShort(ApiError):
    """402: the customer's open tokens do not pay the open part (the MSP's answer)."""

    status_code = 402
    problem = "insufficient-tokens"


# ---------------------------------------------------------------- what the MSP tells us (cached)

_cache_lock = threading.Lock()
_unit_value: dict[str, int] = {}                                # msp_url -> unit value (fixed once issued)
_brands: dict[str, tuple[float, dict[int, str]]] = {}          # member -> (read at, product -> brand)


@dataclass(frozen=True)
class Saga:
    """What this module needs of the mall saga, which connects it at import (the
    saga imports this module for its answer handlers, so not the other way)."""

    member_id: Callable[[], str]
    key_resolver: Callable[[str], Any]
    network_key: Callable[[], Any]
    wake: Callable[[], None]
    deliver_now: Callable[[str, float], Any]
    send_leased: Callable[[outbox.Claimed, float], Any]


_saga: Saga | None = None


def connect(saga: Saga) -> None:
    global _saga
    _saga = saga


def _the_saga() -> Saga:
    if _saga is None:
        raise RuntimeError("the mall saga is not imported: open payments have no network")
    return _saga


def _quick_client() -> MallClient:
    """A signed client that gives up after PLAN_TIMEOUT (quotes never hang on the MSP)."""
    global _quick
    if _quick is None:
        saga = _the_saga()
        _quick = MallClient(saga.member_id, saga.network_key(), saga.key_resolver,
                            ca_file=get_settings().ca_file or None, timeout=PLAN_TIMEOUT)
    return _quick


_quick: MallClient | None = None


def _msp_url() -> str:
    with read_session() as db:
        url = mall_notices.joined_msp_url(db)
    if url is None:
        raise Conflict("this store has not joined a mall: it cannot take open tokens", reason="not_in_mall")
    return url


def unit_value_cents(fetch: bool = True) -> int:
    """The open unit's cash value, from the MSP's public open catalog. It cannot change once any open
    token was issued (and none can pay before), so it is read once per process. `fetch=False`
    (inside a write transaction): the cached value or 503, never a call."""
    url = _msp_url()
    if url in _unit_value:
        return _unit_value[url]
    if not fetch:
        raise MspUnavailable("the open unit's value could not be read from the MSP", reason="msp_unreachable")
    try:
        r = requests.get(url + "/v1/mall/open-catalog", timeout=PLAN_TIMEOUT, verify=get_settings().ca_file or True)
        value = int(r.json()["unit_value_cents"]) if r.status_code == 200 else 0
    except (requests.RequestException, ValueError, KeyError, TypeError) as e:
        raise MspUnavailable(f"the MSP cannot be reached to price open tokens: {e}"[:300],
                             reason="msp_unreachable") from None
    if value < 1:
        raise MspUnavailable(f"the MSP's open catalog answered {r.status_code}", reason="msp_unreachable")
    with _cache_lock:
        _unit_value[url] = value
    return value


_down_until = 0.0
DOWN_SECONDS = 5.0   # after the MSP failed to answer, a quote does not wait for it again this long


def _mark_down() -> None:
    global _down_until
    _down_until = time.monotonic() + DOWN_SECONDS


def _msp_down() -> bool:
    return time.monotonic() < _down_until


def prefetch_unit(payment: str) -> None:
    """Before an order's write transaction: read the unit's value (cached after the first time).
    `open` needs it (409 not in a mall, 503 MSP away); `auto` may not (its own tokens may pay)."""
    if payment == OrderPayment.OPEN:
        unit_value_cents()
    elif payment == OrderPayment.AUTO:
        try:
            unit_value_cents()
        except ApiError:
            pass   # start_order refuses it only if open units are needed


def brand_products(member_id: str) -> dict[int, str]:
    """Product id -> brand id of this member's products on the MSP's list 2103 (a minute old at
    most; if the MSP does not answer, the last copy, or none)."""
    now = time.monotonic()
    cached = _brands.get(member_id)
    if cached is not None and now - cached[0] < CATALOG_MAX_AGE:
        return cached[1]
    try:
        answer = _quick_client().send("GET", f"{_msp_url()}/v1/mall/brand-products?member={member_id}")
        rows = answer.body if answer.status == 200 and isinstance(answer.body, list) else None
    except Unreachable:
        _mark_down()
        rows = None
    except Conflict:
        rows = None
    if rows is None:
        return cached[1] if cached is not None else {}
    found = {int(r["product_id"]): str(r["brand_id"]) for r in rows if isinstance(r, dict)}
    with _cache_lock:
        _brands[member_id] = (now, found)
    return found


def customer(db: Session, user: User) -> dict[str, str]:
    """The customer at the MSP: a linked user's home ids, else this member and the user."""
    link = db.scalar(select(MallLink).where(MallLink.user_id == user.id))
    if link is not None:
        return {"home_member": link.home_member_id, "home_user_id": link.home_user_id, "full_name": user.full_name}
    row = mall.membership(db)
    if row is None:
        raise Conflict("this store has not joined a mall: it cannot take open tokens", reason="not_in_mall")
    return {"home_member": row.member_id, "home_user_id": str(user.id), "full_name": user.full_name}


# ---------------------------------------------------------------- the split (auto / open)

@dataclass(frozen=True)
class LineSplit:
    line: int            # the item's number in the order (1, 2, ...)
    tokens: int          # the item's price in this member's tokens
    closed_tokens: int   # paid with them
    open_units: int      # the rest, in open units (0 when closed tokens pay it all)


def split(wallet: ledger.Wallet, plan: Plan, payment: str, token_price: int, unit: int) -> list[LineSplit]:
    """auto: the user's own tokens first (restricted ones for items on sale, then the others; not the
    vendor's negative draw), the rest of each line in open units, rounded up (never underpaid).
    open: every line in open units."""
    closed = [0] * len(plan.items)
    if payment == OrderPayment.AUTO:
        restricted = max(0, wallet.total(TokenKind.RESTRICTED))
        others = sum(a.balance for a in wallet.lots if a.token_kind != TokenKind.RESTRICTED and a.balance > 0)
        # on-sale lines first: only they can use restricted tokens
        order = sorted(range(len(plan.items)), key=lambda i: not plan.items[i].product.on_sale)
        for i in order:
            want = plan.items[i].tokens
            if plan.items[i].product.on_sale:
                n = min(want, restricted)
                restricted -= n
                want -= n
                closed[i] += n
            n = min(want, others)
            others -= n
            closed[i] += n
    out = []
    for i, item in enumerate(plan.items):
        rest = item.tokens - closed[i]
        out.append(LineSplit(i + 1, item.tokens, closed[i], open_money.units_for_cents(rest * token_price, unit)
                             if rest else 0))
    return out


def needs_open(db: Session, user: User, plan: Plan, payment: str, token_price: int) -> bool:
    """Whether an order with this payment takes open tokens (auto: only when the user's own are short)."""
    if payment == OrderPayment.OPEN:
        return True
    return any(s.open_units for s in split(ledger.load_wallet(db, user), plan, payment, token_price, 1))


def _msp_lines(plan: Plan, splits: list[LineSplit]) -> list[dict[str, int]]:
    return [{"line": s.line, "product_id": plan.items[s.line - 1].product.id, "quantity": 1, "units": s.open_units}
            for s in splits if s.open_units > 0]


# ---------------------------------------------------------------- quotes

def quote_extras(db: Session, user: User, plan: Plan, wallet: ledger.Wallet, payment: str,
                 token_price: int, answer: dict[str, Any]) -> None:
    """Add the open part to a quote (`answer`, built by orders.quote) in place."""
    answer["payment"] = payment
    error: str | None = None
    unit: int | None = None
    groups: tuple[str, ...] = ()
    brands: dict[int, str] = {}
    try:
        row, d = mall.directory(db)
    except mall.NotInMall as e:
        if payment == OrderPayment.OPEN:
            raise
        error = e.detail   # auto: this store's own tokens only
    else:
        me = d.member(row.member_id)
        groups = me.groups if me is not None else ()
        brands = brand_products(row.member_id)
        try:
            unit = unit_value_cents()
        except MspUnavailable as e:
            error = e.detail
    splits = split(wallet, plan, payment, token_price, unit or 1)
    for item, s in zip(answer["items"], splits, strict=True):
        kinds = open_money.kinds_for_product(brands.get(item["product_id"]), groups) if unit else ()
        item["open_kinds"] = [k.value for k in kinds]
        item["split"] = {"closed_tokens": s.closed_tokens, "open_units": s.open_units if unit else None}
    closed_total = sum(s.closed_tokens for s in splits)
    answer["closed_tokens"] = closed_total
    answer["open_units"] = sum(s.open_units for s in splits) if unit else None
    answer["unit_value_cents"] = unit
    answer["remaining_tokens"] = answer["available_tokens"] - closed_total
    answer["shortage"] = 0
    plan_body: dict[str, Any] | None = None
    lines = _msp_lines(plan, splits)
    if unit and lines and _msp_down():
        error = "the MSP did not answer a moment ago"   # one quote waits at most once for it
    elif unit and lines:
        try:
            r = _quick_client().send("POST", _msp_url() + PLANS_PATH,
                                     {"customer": customer(db, user), "lines": lines})
            if r.status == 200 and isinstance(r.body, dict) and isinstance(r.body.get("plan"), dict):
                plan_body = r.body["plan"]
            else:
                error = f"the MSP answered {r.status}: {r.detail}"[:300]
        except Unreachable as e:
            _mark_down()
            error = f"the MSP did not answer in {PLAN_TIMEOUT:g} s: {e}"[:300]
    answer["open_plan"] = plan_body
    answer["open_plan_error"] = error if plan_body is None and lines else None
    answer["payable"] = (not lines) or (plan_body is not None and int(plan_body.get("short_units", 1)) == 0)


# ---------------------------------------------------------------- orders: the first step

def start_order(db: Session, user: User, device: Device, plan: Plan, payment: str, token_price: int,
                available: int, installed: list[int], idempotency_key: str | None) -> Outcome:
    """In the caller's transaction (wallet locked): the pending order, the closed hold, the open
    payment and its `open.authorize` message. 202 with the pending receipt."""
    unit = unit_value_cents(fetch=False)   # read before the transaction (prefetch_unit)
    wallet = ledger.load_wallet(db, user)
    splits = split(wallet, plan, payment, token_price, unit)
    closed_total = sum(s.closed_tokens for s in splits)
    now = utcnow()
    order = Order(user_id=user.id, device_pk=device.id, device_id=device.device_id, status=OrderStatus.PENDING,
                  payment=payment, required_tokens=plan.required, available_tokens=available,
                  balance_after=available - closed_total, token_price_cents=token_price,
                  cash_cents=cash_cents(plan.required, token_price), created_at=now)
    db.add(order)
    db.flush()
    if closed_total:
        what = ", ".join(dict.fromkeys(i.product.name for i in plan.items))
        lines = [ledger.SpendLine(tokens=s.closed_tokens, on_sale=plan.items[s.line - 1].product.on_sale)
                 for s in splits if s.closed_tokens]
        order.hold_id = ledger.hold(db, user, lines, reference=f"order:{order.id}",
                                    memo=f"order {order.id}: {what} (the rest in open tokens)").id
    operation_id = str(uuid.uuid4())
    body = {"operation_id": operation_id, "customer": customer(db, user), "lines": _msp_lines(plan, splits)}
    request = {"items": [{"offer_id": i.offer.id, "quantity": i.quantity,
                          "license_id": i.target.license.id if i.target.license else None} for i in plan.items],
               "splits": [s.__dict__ for s in splits], "installed": list(installed),
               "idempotency_key": idempotency_key, "closed_tokens": closed_total}
    db.add(_remember(db, OrderOpenPayment(
        order_id=order.id, operation_id=operation_id, units=sum(s.open_units for s in splits),
        status=OpenOrderStatus.AUTHORIZING, request_json=json.dumps(request), created_at=now, updated_at=now)))
    # leased to this request, which sends it once this commits (finish_request); the worker only
    # if the request never does
    leased = outbox.enqueue_leased(db, MallOutboxMessage, kind=OpenMessage.AUTHORIZE, destination=MSP_ID,
                                   method="POST", path=PAYMENTS_PATH, body=body, message_id=operation_id)
    db.flush()
    order_id = order.id
    on_commit(db, lambda: _publish(_started, order_id, leased))
    return Outcome(202, _orders().receipt(db, order, []))


def wake_worker() -> None:
    """After a commit that queued a refund (the admin API): the server sends it now."""
    with read_session() as db:
        if mall.membership(db) is None:
            return
    _the_saga().wake()


def deliver_and_wait(operation_id: str, timeout: float = AUTHORIZE_WAIT) -> None:
    """Send the authorization now from the request's thread (the handler records the answer)."""
    _the_saga().deliver_now(operation_id, timeout)


# What the request that placed an order needs next, published once the transaction that wrote it has
# committed (db.on_commit), so that it reads nothing again; a request that finds nothing here reads it.
_MAX_PUBLISHED = 1000
_published_lock = threading.Lock()
_started: OrderedDict[int, outbox.Claimed] = OrderedDict()   # order id -> its authorization, leased (start_order)
_finished: OrderedDict[int, Outcome] = OrderedDict()    # order id -> its final answer (_upgrade_answer)


def _publish(table: OrderedDict[int, Any], order_id: int, value: Any) -> None:
    with _published_lock:
        table[order_id] = value
        while len(table) > _MAX_PUBLISHED:   # answers recorded by the worker nobody asks for
            table.popitem(last=False)


def _take(table: OrderedDict[int, Any], order_id: int) -> Any:
    with _published_lock:
        return table.pop(order_id, None)


def finish_request(user_id: int, order_id: int) -> Outcome:
    """After the first transaction of an open order: ask the MSP now (8 s at most) and answer what
    the order is then (201, the final refusal, or still 202 pending)."""
    leased = _take(_started, order_id)
    if leased is not None:
        _the_saga().send_leased(leased, AUTHORIZE_WAIT)
    else:   # a replayed 202: its first request sends it, or has
        with read_session() as db:
            oop = operation_of(db, order_id)
            operation_id = oop.operation_id if oop is not None else None
        if operation_id is not None:
            deliver_and_wait(operation_id)
    done = _take(_finished, order_id)
    if done is not None:
        return done
    with read_session() as db:
        order = db.get(Order, order_id)
        if order is None or order.user_id != user_id:
            raise NotFound("no such order")
        return final_outcome(db, order)


_OPERATIONS = "open_payments_by_order"


def _remember(db: Session, oop: OrderOpenPayment) -> OrderOpenPayment:
    """This session has the row already (made or locked): its receipts need not read it again."""
    session_cache(db, _OPERATIONS)[oop.order_id] = oop
    return oop


def operation_of(db: Session, order_id: int) -> OrderOpenPayment | None:
    known = session_cache(db, _OPERATIONS).get(order_id)
    if known is not None:
        return cast(OrderOpenPayment, known)
    return db.scalar(select(OrderOpenPayment).where(OrderOpenPayment.order_id == order_id))


def final_outcome(db: Session, order: Order) -> Outcome:
    """The answer an order's request has now: 201 completed, the refusal of a failed one, 202 pending."""
    receipt = _orders().receipt

    oop = operation_of(db, order.id)
    if order.status == OrderStatus.FAILED:
        stored = json.loads(oop.answer_json or "{}").get("final") if oop is not None else None
        if stored:
            return Outcome(int(stored["status"]), stored["body"])
        return Outcome(409, Conflict(f"order {order.id} failed", reason="failed").body())
    return Outcome(201 if order.status != OrderStatus.PENDING else 202, jsonable_encoder(receipt(db, order)))


def wait_for_order(user_id: int, order_id: int, wait: float) -> None:
    """GET /v1/orders/{id}?wait=: return once the order is no longer pending, or after `wait` s."""
    deadline = time.monotonic() + min(max(wait, 0.0), MAX_ORDER_WAIT)
    with read_session() as db:
        order = db.get(Order, order_id)
        oop = operation_of(db, order_id) if order is not None and order.user_id == user_id else None
        pending = oop is not None and order is not None and order.status == OrderStatus.PENDING
    if pending and oop is not None:
        # the client waits anyway: ask the MSP now rather than at the message's next backoff
        deliver_and_wait(oop.operation_id, max(deadline - time.monotonic(), 0.0))
    while True:
        with read_session() as db:
            order = db.get(Order, order_id)
            if order is None or order.user_id != user_id or order.status != OrderStatus.PENDING:
                return
        if time.monotonic() >= deadline:
            return
        time.sleep(0.1)


# ---------------------------------------------------------------- the MSP's answer to open.authorize

class _LocalFailure(Exception):
    pass


def _upgrade_answer(db: Session, order: Order, oop: OrderOpenPayment, outcome: Outcome) -> None:
    """The stored idempotent 202 becomes the final answer (a 202 is not final; the first final is)."""
    final = Outcome(outcome.status_code, jsonable_encoder(outcome.body))
    order_id = order.id
    on_commit(db, lambda: _publish(_finished, order_id, final))
    key = json.loads(oop.request_json).get("idempotency_key")
    if key is None:
        return
    r = IdempotencyRecord
    db.execute(update(r).where(r.user_id == order.user_id, r.key == key, r.status_code == 202)
               .values(status_code=final.status_code, response_json=json.dumps(final.body))
               .execution_options(synchronize_session=False))


def _result_unsent(db: Session, oop: OrderOpenPayment) -> bool:
    """Whether the payment's result (confirm or void) still waits in the outbox."""
    status = db.scalar(select(MallOutboxMessage.status)
                       .where(MallOutboxMessage.message_id == f"{oop.operation_id}:result"))
    return status == outbox.OutboxStatus.PENDING


def _result(db: Session, oop: OrderOpenPayment, status: str, reason: str = "") -> None:
    body: dict[str, Any] = {"operation_id": oop.operation_id, "status": status, "units": oop.units}
    if reason:
        body["reason"] = reason[:200]
    outbox.enqueue(db, MallOutboxMessage, kind=OpenMessage.CONFIRM if status == "confirmed" else OpenMessage.VOID,
                   destination=MSP_ID, method="POST", path=RESULTS_PATH, body=body,
                   message_id=f"{oop.operation_id}:result")


def _fail(db: Session, order: Order, oop: OrderOpenPayment, status: int, body: dict[str, Any],
          open_status: str, reason: str) -> None:
    if order.hold_id is not None:
        h = db.get(LedgerHold, order.hold_id)
        if h is not None and h.status == HoldStatus.HELD:
            ledger.void_hold(db, h.id, memo=f"order {order.id} failed: {reason}"[:200])
    order.status = OrderStatus.FAILED
    order.balance_after = order.available_tokens
    oop.status, oop.reason, oop.updated_at = open_status, reason[:300], utcnow()
    stored = json.loads(oop.answer_json or "{}")
    stored["final"] = {"status": status, "body": body}
    oop.answer_json = json.dumps(stored)
    db.flush()
    _upgrade_answer(db, order, oop, Outcome(status, body))


def _complete(db: Session, order: Order, oop: OrderOpenPayment, auth: dict[str, Any]) -> None:
    """The licenses, codes and receipt of an authorized order (raises _LocalFailure: nothing written)."""
    orders = _orders()

    request = json.loads(oop.request_json)
    device = db.get(Device, order.device_pk)
    if device is None:
        raise _LocalFailure("the order's device was removed")
    try:
        with db.begin_nested():
            plan = orders.plan_items(db, order.user_id, request["items"], device)
            splits = request["splits"]
            if [i.tokens for i in plan.items] != [s["tokens"] for s in splits]:
                raise _LocalFailure("a price changed while the MSP was asked")
            codes = orders._apply(db, order.user_id, plan, device, utcnow())
    except ApiError as e:
        raise _LocalFailure(e.detail) from None
    installed = set(request.get("installed") or [])
    versions = {i.product.id: orders.latest_version(db, i.product.id) for i in plan.items
                if i.product.id not in installed}
    if order.hold_id is not None:
        ledger.post_hold(db, order.hold_id, memo=f"order {order.id}")
    price = order.token_price_cents
    items = [OrderItem(order_id=order.id, offer_id=i.offer.id, product_id=i.product.id, product_name=i.product.name,
                       offer_kind=i.offer.kind, action=i.action, quantity=i.quantity, tokens=i.tokens,
                       cash_cents=cash_cents(i.tokens, price), license_id=_license_id(i)) for i in plan.items]
    db.add_all(items)
    deliveries = orders._deliveries(plan, device, installed, codes, versions)
    order.deliveries_json = json.dumps(deliveries)
    order.status = OrderStatus.COMPLETED
    db.execute(delete(SavedOrderList).where(SavedOrderList.user_id == order.user_id))
    oop.status, oop.updated_at = OpenOrderStatus.CONFIRMED, utcnow()
    _result(db, oop, "confirmed")
    db.flush()
    _upgrade_answer(db, order, oop, Outcome(201, orders.receipt(db, order, items, deliveries)))


def _license_id(item: Any) -> int:
    assert item.target.license is not None   # _apply made or changed it
    return int(item.target.license.id)


def _on_authorize_answer(db: Session, message: Any, answer: Answer) -> None:
    oop = db.scalar(select(OrderOpenPayment).where(OrderOpenPayment.operation_id == message.message_id))
    if oop is None:
        return
    order = db.get(Order, oop.order_id)
    assert order is not None
    ledger.lock_wallets(db, order.user_id)
    if db.get_bind().dialect.name != "sqlite":   # read again after the lock (SQLite's BEGIN IMMEDIATE came first)
        db.refresh(order)
        db.refresh(oop)
    _remember(db, oop)
    if order.status != OrderStatus.PENDING or oop.status != OpenOrderStatus.AUTHORIZING:
        return    # answered already (a resend)
    body = answer.body if isinstance(answer.body, dict) else {}
    stored = json.loads(oop.answer_json or "{}")
    stored["msp"] = {"status": answer.status, "body": body}
    oop.answer_json = json.dumps(stored)
    if answer.status >= 400 or body.get("status") != "authorized":
        _refused(db, order, oop, answer.status, body)
        return
    hold_expires = _parse_time(body.get("hold_expires_at"))
    oop.hold_expires_at = hold_expires
    reason = ""
    if int(body.get("units", -1)) != oop.units:
        reason = f"the MSP authorized {body.get('units')} units, not {oop.units}"
    elif hold_expires is None or utcnow() > hold_expires - COMPLETE_MARGIN:
        reason = "the MSP's authorization came too late to complete the order"
    if not reason:
        try:
            _complete(db, order, oop, body)
            return
        except _LocalFailure as e:
            reason = str(e)
    # authorized at the MSP but not completed here: void both
    _result(db, oop, "voided", reason)
    _fail(db, order, oop, 409, Conflict(f"the order could not be completed: {reason}",
                                        reason="local_failure").body(), OpenOrderStatus.VOIDED, reason)


def _refused(db: Session, order: Order, oop: OrderOpenPayment, status: int, body: dict[str, Any]) -> None:
    detail = str(body.get("detail", "")) or f"the MSP refused the open payment ({status})"
    if status == 402:
        request = json.loads(oop.request_json)
        problem = OpenShort("not enough open tokens for this order", reason="short",
                            short_units=int(body.get("short_units", 0)),
                            helpful_kinds=list(body.get("helpful_kinds") or []),
                            required_tokens=order.required_tokens, available_tokens=int(request["closed_tokens"]),
                            shortage=order.required_tokens - int(request["closed_tokens"]))
        out_status, out_body = 402, problem.body()
    else:
        out_status = status if 400 <= status < 500 else 409
        out_body = ApiError(f"the MSP refused the open payment: {detail}", out_status,
                            reason=str(body.get("reason", "refused"))).body()
    _fail(db, order, oop, out_status, out_body, OpenOrderStatus.REFUSED, detail)


def _parse_time(text: Any):
    from datetime import datetime

    try:
        t = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def _on_result_answer(db: Session, message: Any, answer: Answer) -> None:
    """The MSP took the result (or answers the first one again). A refused confirm (the MSP voided the
    authorization meanwhile) is for the operator: the order stays completed, the open tokens untaken."""
    if answer.status < 400:
        return
    oop = db.scalar(select(OrderOpenPayment).where(OrderOpenPayment.operation_id == message.payload["operation_id"]))
    log("the MSP refused an open payment's result", logging.ERROR, message_id=message.message_id,
        status=answer.status, detail=answer.detail[:200])
    if oop is not None:
        oop.reason = f"result refused by the MSP ({answer.status}): {answer.detail}"[:300]


def _on_refund_answer(db: Session, message: Any, answer: Answer) -> None:
    if answer.status >= 400:
        log("the MSP refused an open refund", logging.ERROR, message_id=message.message_id, status=answer.status,
            detail=answer.detail[:200])
        oop = db.scalar(select(OrderOpenPayment)
                        .where(OrderOpenPayment.operation_id == message.payload["operation_id"]))
        if oop is not None:
            oop.reason = f"refund refused by the MSP ({answer.status}): {answer.detail}"[:300]


HANDLERS: dict[str, outbox.Handler] = {OpenMessage.AUTHORIZE: _on_authorize_answer,
                                       OpenMessage.CONFIRM: _on_result_answer, OpenMessage.VOID: _on_result_answer,
                                       OpenMessage.REFUND: _on_refund_answer}


# ---------------------------------------------------------------- receipts

def receipt_extras(db: Session, order: Order, out: dict[str, Any]) -> None:
    """`payment`, `paid` and `open_balance_after` of a receipt (in place)."""
    out["payment"] = order.payment
    member = _member_id_or_none(db)
    asset = f"token:{member}" if member else "token"
    oop = operation_of(db, order.id) if order.payment != OrderPayment.CLOSED else None
    done = order.status in (OrderStatus.COMPLETED, OrderStatus.CANCELLED)   # pending: held, not paid yet
    if oop is None:   # a closed order (auto ones too, when this member's tokens paid it all)
        out["paid"] = ([{"asset": asset, "kind": "closed", "issuer": member, "tokens": order.required_tokens}]
                       if done else [])
        return
    paid: list[dict[str, Any]] = []
    closed = int(json.loads(oop.request_json).get("closed_tokens", 0)) if done else 0
    if closed > 0:
        paid.append({"asset": asset, "kind": "closed", "issuer": member, "tokens": closed})
    balance_after: dict[str, int] | None = None
    auth = json.loads(oop.answer_json or "{}").get("msp", {}).get("body", {})
    if done and isinstance(auth, dict):
        by: dict[tuple[str, str | None], int] = {}
        for p in auth.get("portions") or []:
            k = (str(p.get("kind")), p.get("issuer"))
            by[k] = by.get(k, 0) + int(p.get("tokens", 0))
        for (kind, issuer), tokens in by.items():
            paid.append({"asset": open_money.asset_name(OpenKind(kind), issuer), "kind": kind, "issuer": issuer,
                         "tokens": tokens})
        balance_after = _per_kind(auth.get("balance_after"))
    out["open_units"] = oop.units
    out["open_status"] = oop.status
    out["operation_id"] = oop.operation_id
    out["paid"] = paid
    out["open_balance_after"] = balance_after


def _per_kind(raw: Any) -> dict[str, int] | None:
    """The MSP's `balance_after` ({asset: tokens}, usable lots after the hold) summed per kind."""
    if not isinstance(raw, dict):
        return None
    out: dict[str, int] = {}
    for asset, tokens in raw.items():
        try:
            kind, _issuer = open_money.parse_asset(str(asset))
        except open_money.OpenMoneyError:
            continue
        out[kind.value] = out.get(kind.value, 0) + int(tokens)
    return out


_member: str | None = None
_not_joined_until = 0.0
NOT_JOINED_RECHECK = 10.0   # seconds: a store joins by a CLI in another process


def _member_id_or_none(db: Session) -> str | None:
    """This store's member id (once joined it never changes), without a read per receipt."""
    global _member, _not_joined_until
    if _member is None and time.monotonic() >= _not_joined_until:
        row = mall.membership(db)
        if row is None:
            _not_joined_until = time.monotonic() + NOT_JOINED_RECHECK
        else:
            _member = row.member_id
    return _member


# ---------------------------------------------------------------- cancel (the operator)

def cancel_order(db: Session, order_id: int, reason: str) -> dict[str, Any]:
    """A completed order undone: its closed tokens back to the very lots they came from, its open
    tokens refunded by the MSP (through the outbox), its licenses cancelled (no code for them from
    now on). Cancelling a cancelled order answers the same; a pending or failed one is 409."""
    receipt = _orders().receipt

    order = db.get(Order, order_id)
    if order is None:
        raise NotFound("no such order")
    ledger.lock_wallets(db, order.user_id)
    db.refresh(order)
    if order.status == OrderStatus.CANCELLED:
        return receipt(db, order)
    if order.status != OrderStatus.COMPLETED:
        raise Conflict(f"the order is {order.status}: only a completed order can be cancelled",
                       reason=f"order_{order.status}")
    if not reason.strip():
        raise Conflict("give a reason", reason="no_reason")
    oop = operation_of(db, order.id)
    if oop is not None and oop.status == OpenOrderStatus.CONFIRMED and _result_unsent(db, oop):
        # the MSP refunds only a confirmed payment: a refund that overtook the confirm would be
        # refused for good and the customer's open tokens never given back
        raise Conflict("the MSP has not received this order's confirmation yet; cancel it again shortly",
                       reason="confirm_pending")
    if order.hold_id is not None:
        _refund_hold(db, order, reason)
    if oop is not None and oop.status == OpenOrderStatus.CONFIRMED:
        refund_id = str(uuid.uuid4())
        outbox.enqueue(db, MallOutboxMessage, kind=OpenMessage.REFUND, destination=MSP_ID, method="POST",
                       path=REFUNDS_PATH, message_id=refund_id,
                       body={"refund_id": refund_id, "operation_id": oop.operation_id, "reason": reason[:200]})
        oop.status, oop.updated_at = OpenOrderStatus.REFUNDED, utcnow()
        oop.reason = f"cancelled: {reason}"[:300]
    now = utcnow()
    lic_ids = {i.license_id for i in db.scalars(select(OrderItem).where(OrderItem.order_id == order.id))}
    for lic in db.scalars(select(License).where(License.id.in_(lic_ids))):
        if lic.cancelled_at is None:
            lic.cancelled_at, lic.updated_at = now, now
    order.status = OrderStatus.CANCELLED
    order.balance_after = order.available_tokens
    db.flush()
    return receipt(db, order)


def _refund_hold(db: Session, order: Order, reason: str) -> None:
    """The posted hold's tokens from revenue back to each lot they were held from (the hold's legs)."""
    assert order.hold_id is not None
    acct = ledger.hold_account(db, order.user_id)
    legs = db.scalars(select(LedgerTransfer).where(LedgerTransfer.hold_id == order.hold_id,
                                                   LedgerTransfer.to_account_id == acct.id,
                                                   LedgerTransfer.kind == TransferKind.HOLD)
                      .order_by(LedgerTransfer.id)).all()
    revenue = cast(LedgerAccount, ledger.vendor_account(db, ledger.REVENUE))   # a VendorRef, as the ledger passes
    for leg in legs:
        lot = db.get(LedgerAccount, leg.from_account_id)
        assert lot is not None
        transfer_id = ledger.post_transfer(db, revenue, lot, leg.amount, TransferKind.REFUND,
                                           f"order {order.id} cancelled: {reason}"[:200], hold_id=order.hold_id)
        # back in circulation: the MSP's token record counts it as a grant (its notice kinds have no refund)
        mall_notices.grant(db, transfer_id, leg.amount)
