"""A user's registered devices (patent 003: the designated client). A code
is encrypted to one device's X25519 key; the device id is derived from that
key, never chosen by the client."""
from __future__ import annotations

import base64
import binascii

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from license_agent.codes import device_id_for

from ..models.store import Device, License
from .errors import Conflict, Invalid, NotFound

MAX_DEVICES = 50


def decode_public_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("public_key must be base64 of the raw 32-byte X25519 public key") from None
    if len(raw) != 32:
        raise Invalid("public_key must be base64 of the raw 32-byte X25519 public key")
    return raw


def device_view(d: Device, license_count: int | None = None) -> dict:
    out = {"id": d.id, "device_id": d.device_id, "name": d.name, "public_key": d.public_key,
           "created_at": d.created_at}
    if license_count is not None:
        out["license_count"] = license_count
    return out


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid("device name must be 1-100 characters")
    return name


def register(db: Session, user_id: int, public_key_b64: str, name: str) -> tuple[Device, bool]:
    """(device, created). Registering the same key again is not an error: the
    storefront registers its device on every sign-in; the name is updated."""
    raw = decode_public_key(public_key_b64)
    name = _clean_name(name)
    device_id = device_id_for(raw)
    d = db.scalar(select(Device).where(Device.user_id == user_id, Device.device_id == device_id))
    if d is not None:
        d.name = name
        db.flush()
        return d, False
    count = db.scalar(select(func.count()).select_from(Device).where(Device.user_id == user_id))
    if count >= MAX_DEVICES:
        raise Conflict(f"at most {MAX_DEVICES} devices per account: remove one first")
    d = Device(user_id=user_id, device_id=device_id, public_key=base64.b64encode(raw).decode("ascii"), name=name)
    db.add(d)
    db.flush()
    return d, True


def owned(db: Session, user_id: int, device_id: str) -> Device:
    """The user's device by its hex device id; anyone else's is 404."""
    if not isinstance(device_id, str) or len(device_id) != 32:
        raise NotFound("no such device: register it with POST /v1/devices")
    d = db.scalar(select(Device).where(Device.user_id == user_id, Device.device_id == device_id.lower()))
    if d is None:
        raise NotFound("no such device: register it with POST /v1/devices")
    return d


def list_devices(db: Session, user_id: int) -> list[dict]:
    counts = dict(db.execute(select(License.device_pk, func.count()).where(License.user_id == user_id)
                             .group_by(License.device_pk)).all())
    rows = db.scalars(select(Device).where(Device.user_id == user_id).order_by(Device.id)).all()
    return [device_view(d, counts.get(d.id, 0)) for d in rows]


def rename(db: Session, user_id: int, device_id: str, name: str) -> Device:
    d = owned(db, user_id, device_id)
    d.name = _clean_name(name)
    db.flush()
    return d


def remove(db: Session, user_id: int, device_id: str) -> None:
    d = owned(db, user_id, device_id)
    bound = db.scalar(select(func.count()).select_from(License).where(License.device_pk == d.id))
    if bound:
        raise Conflict(f"{bound} license(s) are bound to this device; it cannot be removed while they are",
                       license_count=bound)
    from ..models.store import Order
    for o in db.scalars(select(Order).where(Order.device_pk == d.id)):
        o.device_pk = None   # receipts keep the device id text
    db.delete(d)
    db.flush()
