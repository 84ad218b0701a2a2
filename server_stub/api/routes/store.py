"""The store: catalog (FIG 6, 7), downloads, devices, quotes (FIG 8),
orders and receipts (FIG 9, 10), the saved order list, licenses and codes,
the vendor's public keys."""
from __future__ import annotations

import os
import re
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable
from sqlalchemy import select

from ...models.store import License, ProductVersion
from ...schemas.common import MAX_ID, Problem
from ...schemas.store import (
    CategoryListed, DeviceCreate, DeviceInUseProblem, DeviceListed, DeviceOut, DeviceRename, LicenseCodeOut,
    LicenseOut, OrderCreate, OrderListOut, OrderListPut, OrderShortageProblem, ProductDetailOut, ProductOut,
    QuoteCreate, QuoteOut, ReceiptOut, VendorKeyOut, WrongDeviceProblem,
)
from ...db import read_session
from ...services import catalog, devices, licenses, open_orders, orders, signing_keys
from ...vocabulary import OrderPayment
from ...services.errors import ApiError, Forbidden, NotFound
from ...services.idempotency import Outcome, run_idempotent
from ..answers import answer
from ..deps import Credentials, CurrentUser, DbSession, IdempotencyKey, IdPath, SignedIn, WriteDb
from ..worker import in_worker
from ..problems import problems

router = APIRouter(tags=["store"])

DevicePath = Annotated[str, Query(pattern=r"^[0-9a-f]{32}$")]
_NO_DEVICE = (404, Problem, "no such device, offer, license or product of yours")
# Answers with keys that are sometimes absent (offers' tiers/unit or tokens/cash_cents,
# deliveries' download fields, saved items' quantity/license_id, a current key's
# retired_at) are serialized with exclude_unset: an absent key stays absent.


# ---------------------------------------------------------------- catalog

@router.get("/categories", response_model=list[CategoryListed])
def categories(db: DbSession):
    """FIG 6: the vendor's software categories, in display order."""
    return catalog.list_categories(db)


@router.get("/products", response_model=list[ProductOut], responses=problems((404, Problem, "no such category"), 422),
            response_model_exclude_unset=True)
def products(db: DbSession, category_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None):
    """FIG 7: products with their offers (tokens and cash equivalent)."""
    return catalog.list_products(db, category_id)


@router.get("/products/{product_id}", response_model=ProductDetailOut, responses=problems(404, 422), response_model_exclude_unset=True)
def product(product_id: IdPath, db: DbSession):
    p = catalog.get_product(db, product_id)
    out = catalog.product_views(db, [p])[0]
    rows = db.scalars(select(ProductVersion).where(ProductVersion.product_id == p.id)
                      .order_by(ProductVersion.id.desc())).all()
    out["versions"] = [catalog.version_view(v) for v in rows]
    return out


@router.get("/vendor-key", response_model=VendorKeyOut, responses=problems(503), response_model_exclude_unset=True)
def vendor_key(db: DbSession):
    """The key new codes are signed with (`kid`, `public_key`: base64 raw
    Ed25519) and every key the agent should trust (`keys`)."""
    keys = signing_keys.trusted_keys(db)
    return {"kid": keys[0]["kid"], "public_key": keys[0]["public_key"], "keys": keys}


# ---------------------------------------------------------------- downloads

def _file_answer(request: Request, v: ProductVersion):
    path = catalog.packages_dir() / v.storage_name
    try:
        st = os.stat(path)
    except OSError:
        raise NotFound("the file of this version is missing on the server") from None
    etag = f'"{v.sha256}"'
    headers = {"etag": etag, "x-content-sha256": v.sha256, "cache-control": "private, no-transform"}
    if _none_match(request.headers.get("if-none-match"), v.sha256):
        return Response(status_code=304, headers=headers)
    # FileResponse streams in chunks and answers Range / If-Range (206).
    answer = FileResponse(path, headers=headers, filename=v.file_name, stat_result=st,
                          media_type="application/octet-stream")
    _refuse_bad_range(request, answer, st.st_size)
    return answer


def _refuse_bad_range(request: Request, answer: FileResponse, size: int) -> None:
    """FileResponse would refuse a bad Range in plain text (400, 416); refuse it
    first, as problem details, with the same parser and the same conditions."""
    wanted, if_range = request.headers.get("range"), request.headers.get("if-range")
    if wanted is None or (if_range is not None and not answer._should_use_range(if_range)):
        return
    try:
        FileResponse._parse_range_header(wanted, size)
    except MalformedRangeHeader as e:
        raise ApiError(f"bad Range header: {e.content}", 400) from None
    except RangeNotSatisfiable:
        raise ApiError(f"the range starts beyond the file ({size} bytes)", 416,
                       headers={"Content-Range": f"bytes */{size}"}) from None


_ETAG_RE = re.compile(r'(?:W/)?"([^"]*)"')


def _none_match(header: str | None, opaque: str) -> bool:
    """If-None-Match (RFC 9110 13.1.2): `*`, or a list of entity tags compared
    weakly, so `W/"<sha>"` matches our `"<sha>"`."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return opaque in _ETAG_RE.findall(header)


def _licensed_version(db, user, product_id: int, version_id: int | None) -> ProductVersion:
    catalog.get_product(db, product_id, include_inactive=True)
    held = db.scalar(select(License.id).where(License.user_id == user.id, License.product_id == product_id).limit(1))
    if held is None:
        raise Forbidden("only a user who holds a license for this product may download it")
    if version_id is None:
        v = catalog.latest_version(db, product_id)
    else:
        v = db.get(ProductVersion, version_id)
        if v is not None and v.product_id != product_id:
            v = None
    if v is None:
        raise NotFound("no published version of this product")
    return v


_DL_RESPONSES = {200: {"description": "the file", "content": {"application/octet-stream": {
                     "schema": {"type": "string", "format": "binary"}}}},
                 206: {"description": "a byte range"}, 304: {"description": "not modified"},
                 **problems((400, Problem, "a malformed Range header"),
                            (416, Problem, "the Range starts beyond the file (with `Content-Range: bytes */SIZE`)"),
                            (403, Problem, "only a holder of a license for the product may download it"),
                            (404, Problem, "no such product, or no published version (or file) of it"), 422)}
# The answer is the file (a FileResponse): documented as octet-stream, not JSON.


# GET and HEAD registered separately: one api_route with both methods gives
# two OpenAPI operations with the same operationId (an invalid document).
@router.get("/products/{product_id}/download", responses=_DL_RESPONSES, response_class=Response, operation_id="download_latest")
@router.head("/products/{product_id}/download", responses=_DL_RESPONSES, response_class=Response, operation_id="download_latest_head")
def download_latest(product_id: IdPath, request: Request, user: CurrentUser, db: DbSession):
    """The latest published file of a product. HTTP Range and If-Range resume a
    download; the ETag is the file's SHA-256."""
    return _file_answer(request, _licensed_version(db, user, product_id, None))


@router.get("/products/{product_id}/versions/{version_id}/download", responses=_DL_RESPONSES, response_class=Response,
            operation_id="download_version")
@router.head("/products/{product_id}/versions/{version_id}/download", responses=_DL_RESPONSES, response_class=Response,
             operation_id="download_version_head")
def download_version(product_id: IdPath, version_id: IdPath, request: Request, user: CurrentUser, db: DbSession):
    return _file_answer(request, _licensed_version(db, user, product_id, version_id))


# ---------------------------------------------------------------- devices

@router.post("/devices", status_code=201, response_model=DeviceOut,
             responses={200: {"model": DeviceOut, "description": "the same key again: the same device, renamed"},
                        **problems((409, Problem, "the account has the most devices allowed"), 422)})
def register_device(body: DeviceCreate, user: CurrentUser, db: WriteDb):
    """Register this computer's X25519 public key. The same key again answers
    200 with the same device (the name is updated)."""
    d, created = devices.register(db, user.id, body.public_key, body.name)
    view = devices.device_view(d)
    db.commit()
    # A Response returned as is: response_model documents it, FastAPI does not re-validate it.
    return JSONResponse(status_code=201 if created else 200, content=_json(view))


@router.get("/devices", response_model=list[DeviceListed])
def list_devices(user: CurrentUser, db: DbSession):
    return devices.list_devices(db, user.id)


@router.patch("/devices/{device_id}", response_model=DeviceOut,
              responses=problems((404, Problem, "no such device of yours"), 422))
def rename_device(device_id: str, body: DeviceRename, user: CurrentUser, db: WriteDb):
    return devices.device_view(devices.rename(db, user.id, device_id, body.name))


@router.delete("/devices/{device_id}", status_code=204,
               responses=problems((404, Problem, "no such device of yours"),
                                  (409, DeviceInUseProblem, "licenses are bound to it"), 422))
def remove_device(device_id: str, user: CurrentUser, db: WriteDb):
    devices.remove(db, user.id, device_id)
    return Response(status_code=204)


# ---------------------------------------------------------------- quotes, orders

@router.post("/quotes", response_model=QuoteOut, responses=problems(_NO_DEVICE, 409, 422),
             response_model_exclude_unset=True)
def quote(body: QuoteCreate, user: CurrentUser, db: DbSession):
    """FIG 8: RT, AT and what would remain, item by item. Moves nothing. With `payment` open or
    auto: per item the open kinds that can pay it and the split, and the MSP's plan (3 s at most)."""
    from ...models.user import User

    return orders.quote(db, db.get(User, user.id), body.items, body.device_id, body.payment)


@router.post("/orders", status_code=201, response_model=ReceiptOut,
             responses={202: {"model": ReceiptOut, "description": "paid partly in open tokens and the MSP has not "
                                                                  "answered yet: the order is `pending`"},
                        **problems((402, OrderShortageProblem, "short of tokens: RT, AT, shortage; paid in open "
                                                               "tokens, also `reason` short, `short_units`, "
                                                               "`helpful_kinds`"),
                                   (403, Problem, "the account is inactive (`type` .../account-inactive)"),
                                   _NO_DEVICE, 409, 422, 503)})
async def place_order(body: OrderCreate, signed_in: SignedIn, idempotency_key: IdempotencyKey = None):
    """FIG 9, 10: hold the tokens, create or extend the licenses, issue their
    codes for the device, post the hold. Exactly once per Idempotency-Key.
    Open tokens (`payment` open or auto): the MSP authorizes them first; 202
    `pending` when it has not answered in 8 s (GET /v1/orders/{id}?wait=)."""
    user_id, outcome = await in_worker(_place_order, body, signed_in, idempotency_key)
    if outcome.status_code == 202:
        # waiting for the MSP (up to 8 s) on anyio's pool, not on the few threads of the hot path
        outcome = await run_in_threadpool(open_orders.finish_request, user_id, int(outcome.body["id"]))
    return answer(outcome)


def _place_order(body: OrderCreate, signed_in: Credentials, idempotency_key: str | None) -> tuple[int, Outcome]:
    user = signed_in.user()
    payload = body.model_dump(exclude={"payment"} if body.payment == OrderPayment.CLOSED else None)
    open_orders.prefetch_unit(body.payment)   # read (or cached) before the write transaction, not inside it
    outcome = run_idempotent(
        user.id, idempotency_key, "POST /v1/orders", payload,
        # a concurrent request with the same key that waited for the wallet lock
        # and then refused (tokens gone, license exists) replays the first answer
        lambda db: orders.place_order(db, user.id, body.items, body.device_id, body.installed_product_ids,
                                      body.payment, idempotency_key),
    )
    return user.id, outcome


@router.get("/orders", response_model=list[ReceiptOut], response_model_exclude_unset=True)
def my_orders(user: CurrentUser, db: DbSession, limit: Annotated[int, Query(ge=1, le=500)] = 100,
              before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None):
    """The user's receipts, newest first."""
    return orders.list_orders(db, user.id, limit, before_id)


@router.get("/orders/{order_id}", response_model=ReceiptOut, responses=problems(404, 422), response_model_exclude_unset=True)
def my_order(order_id: IdPath, user: CurrentUser,
             wait: Annotated[float, Query(ge=0, le=open_orders.MAX_ORDER_WAIT)] = 0):
    """A receipt: items, tokens, cash equivalent, balance after, deliveries.
    `wait`: up to that many seconds (at most 10) for a pending order to complete or fail."""
    if wait:
        open_orders.wait_for_order(user.id, order_id, wait)
    with read_session() as db:
        return orders.receipt(db, orders.owned_order(db, user.id, order_id))


@router.get("/order-list", response_model=OrderListOut, response_model_exclude_unset=True)
def get_order_list(user: CurrentUser, db: DbSession):
    """FIG 10 step 907: the saved, uncompleted order list."""
    return orders.get_order_list(db, user.id)


@router.put("/order-list", response_model=OrderListOut, responses=problems(_NO_DEVICE, 422), response_model_exclude_unset=True)
def put_order_list(body: OrderListPut, user: CurrentUser, db: WriteDb):
    """Save the order list (an empty list clears it). Placing an order clears it."""
    return orders.put_order_list(db, user.id, [i.model_dump(exclude_none=True) for i in body.items])


@router.delete("/order-list", status_code=204)
def clear_order_list(user: CurrentUser, db: WriteDb):
    orders.put_order_list(db, user.id, [])
    return Response(status_code=204)


# ---------------------------------------------------------------- licenses

@router.get("/licenses", response_model=list[LicenseOut])
def my_licenses(user: CurrentUser, db: DbSession):
    """The user's licenses with their terms (totals granted)."""
    return licenses.list_licenses(db, user.id)


@router.get("/licenses/{license_id}", response_model=LicenseOut, responses=problems(404, 422))
def my_license(license_id: IdPath, user: CurrentUser, db: DbSession):
    from ...models.store import Device

    lic = licenses.owned(db, user.id, license_id)
    return licenses.license_view(lic, db.get(Device, lic.device_pk))


@router.get("/licenses/{license_id}/code", response_model=LicenseCodeOut,
            responses=problems((404, Problem, "no such license or device of yours"),
                               (409, WrongDeviceProblem, "bound to another of your devices"), 422, 503))
def license_code(license_id: IdPath, device_id: DevicePath, user: CurrentUser, db: DbSession):
    """A fresh code with the license's current serial and totals, for the
    registered device it is bound to."""
    return licenses.code_for(db, user.id, license_id, device_id)


def _json(value):
    from fastapi.encoders import jsonable_encoder

    return jsonable_encoder(value)
