"""The vendor's catalog, publishing, key rotation and sales report. Admins only (403)."""
from __future__ import annotations

import os
import tempfile
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from ...db import write_session
from ...models.store import Offer, Order
from ...models.user import User
from ...schemas.common import Problem, Rfc3339
from ...schemas.store import (
    AdminReceiptOut, CancelOrderIn, CategoryCreate, CategoryOut, CategoryUpdate, KeyRotatedOut, OfferOut, OfferPut,
    ProductCreate, ProductOut, ProductUpdate, SalesReportOut, VersionOut,
)
from ...services import catalog, open_orders, orders, signing_keys
from ...services.idempotency import Outcome, run_idempotent
from ...services.errors import Invalid, NotFound
from ...vocabulary import OfferKind
from ..answers import answer
from ..deps import AdminUser, DbSession, IdempotencyKey, IdPath, WriteDb
from ..problems import ADMINS_ONLY, problems

router = APIRouter(prefix="/admin", tags=["admin store"], responses=ADMINS_ONLY)
_ERRORS = problems(404, 409, 422)
MAX_UPLOAD = 2 * 1024 * 1024 * 1024
# Offers leave out tiers/unit or tokens/cash_cents, deliveries their download
# fields: serialized with exclude_unset, an absent key stays absent.


@router.get("/products", response_model=list[ProductOut], responses=problems((404, Problem, "no such category"), 422),
            response_model_exclude_unset=True)
def all_products(_admin: AdminUser, db: DbSession,
                 category_id: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None):
    """Every product, inactive ones and inactive offers included."""
    return catalog.list_products(db, category_id, include_inactive=True)


@router.post("/categories", status_code=201, response_model=CategoryOut, responses=problems(409, 422))
def create_category(body: CategoryCreate, _admin: AdminUser, db: WriteDb):
    return catalog.category_view(catalog.create_category(db, body.name, body.description, body.position))


@router.patch("/categories/{category_id}", response_model=CategoryOut, responses=_ERRORS)
def update_category(category_id: IdPath, body: CategoryUpdate, _admin: AdminUser, db: WriteDb):
    return catalog.category_view(catalog.update_category(db, category_id, **body.model_dump()))


@router.post("/products", status_code=201, response_model=ProductOut, responses=_ERRORS, response_model_exclude_unset=True)
def create_product(body: ProductCreate, _admin: AdminUser, db: WriteDb):
    p = catalog.create_product(db, **body.model_dump())
    return catalog.product_views(db, [p], include_inactive_offers=True)[0]


@router.patch("/products/{product_id}", response_model=ProductOut, responses=_ERRORS, response_model_exclude_unset=True)
def update_product(product_id: IdPath, body: ProductUpdate, _admin: AdminUser, db: WriteDb):
    p = catalog.update_product(db, product_id, **body.model_dump())
    return catalog.product_views(db, [p], include_inactive_offers=True)[0]


@router.put("/products/{product_id}/offers/{kind}", response_model=OfferOut, responses=problems(404, 422),
            response_model_exclude_unset=True)
def put_offer(product_id: IdPath, kind: OfferKind, body: OfferPut, _admin: AdminUser, db: WriteDb):
    """Create or replace the product's offer of this kind (tiers as a whole)."""
    offer = catalog.put_offer(db, product_id, kind, body.tokens, [(t.quantity, t.tokens) for t in body.tiers],
                              body.low_threshold, body.active)
    return catalog.offer_detail(db, offer)


@router.delete("/offers/{offer_id}", response_model=OfferOut, responses=problems(404, 422), response_model_exclude_unset=True)
def withdraw_offer(offer_id: IdPath, _admin: AdminUser, db: WriteDb):
    """Withdraw an offer (kept for receipts; no longer orderable)."""
    offer = db.get(Offer, offer_id)
    if offer is None:
        raise NotFound("no such offer")
    offer.active = False
    db.flush()
    return catalog.offer_detail(db, offer)


@router.post("/products/{product_id}/versions", status_code=201, response_model=VersionOut,
             responses=problems(404, 409, 413, 422, 503),
             openapi_extra={"requestBody": {"content": {"application/octet-stream": {"schema": {
                 "type": "string", "format": "binary", "minLength": 1}}}, "required": True}})
async def publish_version(product_id: IdPath, request: Request, _admin: AdminUser,
                          version: Annotated[str | None, Query(max_length=64, pattern=catalog.VERSION_RE.pattern)] = None,
                          file_name: Annotated[str, Query(min_length=1, max_length=200)] = "package.bin"):
    """Upload a product version's file (the request body, streamed to disk, not
    empty). A TokenRent package must be signed by a vendor key and be for this
    product; its version comes from its manifest. Any other file needs ?version=
    (422 otherwise)."""
    tmpdir = tempfile.mkdtemp(prefix="upload-", dir=_ensure(catalog.packages_dir()))
    path = os.path.join(tmpdir, "upload.bin")
    try:
        size = 0
        with open(path, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_UPLOAD:
                    raise Invalid("the file is larger than 2 GiB", status_code=413)
                f.write(chunk)
        if size == 0:
            raise Invalid("the request body (the file) is empty")

        def store() -> dict:
            with write_session() as db:
                return catalog.version_view(catalog.publish(db, path, product_id, version, file_name))

        return await run_in_threadpool(store)
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(tmpdir)


def _ensure(path):
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


@router.post("/vendor-key/rotate", status_code=201, response_model=KeyRotatedOut, responses=problems(503))
def rotate_key(_admin: AdminUser, db: WriteDb):
    """New codes use a new key; codes signed before stay valid (the old public
    key stays listed in GET /v1/vendor-key)."""
    return signing_keys.rotate(db)


@router.get("/sales", response_model=SalesReportOut)
def sales(_admin: AdminUser, db: DbSession, since: Rfc3339 | None = None, until: Rfc3339 | None = None):
    """Products-sold records: items, tokens and cash per product and kind."""
    return orders.sales_report(db, since, until)


@router.get("/orders", response_model=list[AdminReceiptOut], responses=problems((404, Problem, "no such user"), 422),
            response_model_exclude_unset=True)
def all_orders(_admin: AdminUser, db: DbSession,
               # no NUL: PostgreSQL cannot compare text with one (a 500, found by the fuzz run); 422
               username: Annotated[str | None, Query(max_length=32, pattern=r"^[^\x00]*$")] = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 100):
    q = select(Order).order_by(Order.id.desc()).limit(limit)
    if username:
        user = db.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound("no such user")
        q = q.where(Order.user_id == user.id)
    return [{**orders.receipt(db, o), "user_id": o.user_id} for o in db.scalars(q).all()]


@router.post("/orders/{order_id}/cancel", response_model=AdminReceiptOut,
             responses=problems((404, Problem, "no such order"),
                                (409, Problem, "the order is pending or failed (`reason` order_pending, order_failed)"),
                                422))
def cancel_order(order_id: IdPath, body: CancelOrderIn, admin: AdminUser, idempotency_key: IdempotencyKey = None):
    """Cancel a completed order: its tokens back to the lots they came from, its open tokens
    refunded by the MSP (through the outbox), its licenses cancelled. Exactly once per
    Idempotency-Key; cancelling a cancelled order answers its receipt again."""
    def cancel(db):
        r = open_orders.cancel_order(db, order_id, body.reason)
        order = db.get(Order, order_id)
        return Outcome(200, {**r, "user_id": order.user_id})

    outcome = run_idempotent(admin.id, idempotency_key, "POST /v1/admin/orders/cancel",
                             {"order_id": order_id, **body.model_dump()}, cancel)
    open_orders.wake_worker()
    return answer(outcome)
