"""Licenses and their authorization codes (kinds a-j). A license holds the
TOTALS granted; every change bumps `serial` and a code carries the totals,
so an extension is simply a newer code (docs/authorization-codes.md)."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from license_agent.codes import Grant, LicenseKind, issue_code

from ..models.base import utcnow
from ..models.store import Device, License, Product
from . import signing_keys
from .catalog import store_url
from .devices import owned as owned_device
from .errors import Conflict, NotFound


def license_view(lic: License, device: Device | None, now: datetime | None = None) -> dict:
    now = now or utcnow()
    active = lic.cancelled_at is None
    if active and lic.kind == LicenseKind.TIME:
        active = lic.expires_at is not None and lic.expires_at > now
    return {
        "id": lic.id, "product_id": lic.product_id, "product_name": lic.product_name, "kind": lic.kind,
        "serial": lic.serial, "device_id": device.device_id if device else None,
        "device_name": device.name if device else None,
        "starts_at": lic.starts_at, "expires_at": lic.expires_at, "uses": lic.uses,
        "processings": lic.processings, "low_threshold": lic.low_threshold,
        "store_url": store_url(lic.product_id), "active": active,
        "created_at": lic.created_at, "updated_at": lic.updated_at,
    }


def owned(db: Session, user_id: int, license_id: int) -> License:
    lic = db.get(License, license_id)
    if lic is None or lic.user_id != user_id:   # another user's license does not exist for you
        raise NotFound("no such license")
    return lic


def list_licenses(db: Session, user_id: int) -> list[dict]:
    devices = {d.id: d for d in db.scalars(select(Device).where(Device.user_id == user_id))}
    rows = db.scalars(select(License).where(License.user_id == user_id).order_by(License.id)).all()
    now = utcnow()
    return [license_view(lic, devices.get(lic.device_pk), now) for lic in rows]


def grant_for(lic: License, device: Device, issued_at: datetime) -> Grant:
    return Grant(
        license_id=str(lic.id), serial=lic.serial, product_id=str(lic.product_id), device_id=device.device_id,
        kind=lic.kind, issued_at=issued_at, store_url=store_url(lic.product_id),
        expires_at=lic.expires_at if lic.kind == LicenseKind.TIME else None,
        uses=lic.uses if lic.kind == LicenseKind.USES else None,
        processings=lic.processings if lic.kind == LicenseKind.PROCESSINGS else None,
        low_threshold=lic.low_threshold if lic.kind != LicenseKind.PERMANENT else None,
        product_name=lic.product_name,
    )


def issue(lic: License, device: Device) -> tuple[str, str]:
    """(code text, kid) for the license's current terms, signed with the current key."""
    key = signing_keys.current_key()
    grant = grant_for(lic, device, utcnow().replace(microsecond=0))
    return issue_code(grant, key.private, base64.b64decode(device.public_key)), key.kid


def code_for(db: Session, user_id: int, license_id: int, device_id: str) -> dict:
    """A fresh code with the license's current serial and totals, for the device
    it is bound to (a code for any other device would let one rental count twice)."""
    lic = owned(db, user_id, license_id)
    if lic.cancelled_at is not None:
        raise Conflict(f"license {lic.id} was cancelled with its order", reason="license_cancelled")
    device = owned_device(db, user_id, device_id)
    if lic.device_pk != device.id:
        bound = db.get(Device, lic.device_pk)
        raise Conflict(f"license {lic.id} is bound to your device {bound.name!r} ({bound.device_id}), "
                       f"not to {device.name!r}", bound_device_id=bound.device_id)
    code, kid = issue(lic, device)
    return {"license_id": lic.id, "product_id": lic.product_id, "serial": lic.serial,
            "device_id": device.device_id, "kid": kid, "authorization_code": code}


# ---------------------------------------------------------------- changes (kinds a-j)

def start(db: Session, user_id: int, product: Product, device: Device, kind: str, now: datetime) -> License:
    lic = License(user_id=user_id, product_id=product.id, device_pk=device.id, kind=kind, serial=0,
                  starts_at=now, product_name=product.name, created_at=now, updated_at=now)
    if kind == LicenseKind.TIME:
        lic.expires_at = now
    elif kind == LicenseKind.USES:
        lic.uses = 0
    elif kind == LicenseKind.PROCESSINGS:
        lic.processings = 0
    db.add(lic)
    db.flush()
    return lic


def add_quantity(lic: License, quantity: int, now: datetime) -> None:
    """Rent (b, c, d) or extend (h, i, j): time adds to the later of now and the
    current end; uses and processings raise the total granted."""
    if lic.kind == LicenseKind.TIME:
        base = max(now, lic.expires_at) if lic.expires_at else now
        lic.expires_at = (base + timedelta(days=quantity)).replace(microsecond=0)
    elif lic.kind == LicenseKind.USES:
        lic.uses = (lic.uses or 0) + quantity
    elif lic.kind == LicenseKind.PROCESSINGS:
        lic.processings = (lic.processings or 0) + quantity
    else:
        raise Conflict("a permanent license has nothing to extend")


def make_permanent(lic: License) -> None:
    """Convert (e, f, g)."""
    lic.kind = LicenseKind.PERMANENT
    lic.expires_at = lic.uses = lic.processings = None


def bump(lic: License, product: Product, low_threshold: int | None, now: datetime) -> None:
    """The license changed: the next serial, the code's product name and threshold."""
    lic.serial += 1
    lic.updated_at = now
    lic.product_name = product.name
    lic.low_threshold = None if lic.kind == LicenseKind.PERMANENT else low_threshold
