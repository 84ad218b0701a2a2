"""The vendor's Ed25519 signing key: a 0600 PEM file OUTSIDE the database
(`Settings.resolved_signing_key_path`), created on first start, rotatable.

Every server process reads the same file; a process notices a rotation by
the file's identity (inode, times, size, mode) and reloads. The database keeps
only PUBLIC keys (`VendorKey`): all keys ever used stay trusted, so codes
and packages signed before a rotation still verify; new ones use the new key.
"""
from __future__ import annotations

import base64
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from license_agent.codes import kid_for

from ..core.config import get_settings
from ..core.key_files import KeyFileError, fsync_dir, read_private, write_private, write_side
from ..models.base import utcnow
from ..models.store import VendorKey
from .errors import ApiError


class SigningKeyUnavailable(ApiError):
    status_code = 503


@dataclass(frozen=True)
class LoadedKey:
    private: Ed25519PrivateKey
    kid: str
    public_b64: str


_cache: dict[str, tuple[tuple, LoadedKey]] = {}
_lock = threading.Lock()


def key_path() -> Path:
    return get_settings().resolved_signing_key_path


def public_raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _loaded(private: Ed25519PrivateKey) -> LoadedKey:
    raw = public_raw(private)
    return LoadedKey(private, kid_for(raw), base64.b64encode(raw).decode("ascii"))


def _identity(path: Path) -> tuple:
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_mode)


def current_key(create: bool = False) -> LoadedKey:
    """The key new codes are signed with. Raises SigningKeyUnavailable (503)."""
    path = key_path()
    if create and not path.exists():
        write_private(path, Ed25519PrivateKey.generate(), replace=False)
    try:
        ident = _identity(path)
    except OSError as e:
        raise SigningKeyUnavailable(f"the vendor signing key is not available ({e.strerror})") from None
    with _lock:
        hit = _cache.get(str(path))
        if hit is not None and hit[0] == ident:
            return hit[1]
    try:
        key = read_private(path, "vendor signing key")
    except KeyFileError as e:
        raise SigningKeyUnavailable(str(e)) from None
    except OSError as e:
        raise SigningKeyUnavailable(f"the vendor signing key cannot be read: {e}") from None
    loaded = _loaded(key)
    with _lock:
        _cache[str(path)] = (ident, loaded)
    return loaded


def record_public(db: Session, key: LoadedKey) -> VendorKey:
    """Make sure the key's public half is listed (write transaction)."""
    row = db.scalar(select(VendorKey).where(VendorKey.kid == key.kid))
    if row is None:
        row = VendorKey(kid=key.kid, public_key=key.public_b64)
        db.add(row)
        db.flush()
    return row


def ensure_key(db: Session) -> LoadedKey:
    """First start: create the key file if missing and list its public key."""
    key = current_key(create=True)
    record_public(db, key)
    return key


def rotate(db: Session) -> dict:
    """A new key for new codes; the old public key stays trusted.

    COMMITS `db`. The order makes a failure anywhere harmless: the new key is
    written to a side file, its public half is recorded and committed, and only
    then is the side file renamed onto the key file (atomic). If the commit
    fails the side file is removed and the old key stays in use; no code is
    ever signed by a key the database does not list."""
    path = key_path()
    old = current_key(create=True)
    record_public(db, old)
    new = _loaded(Ed25519PrivateKey.generate())
    row = record_public(db, new)
    for r in db.scalars(select(VendorKey).where(VendorKey.kid != new.kid, VendorKey.retired_at.is_(None))):
        r.retired_at = utcnow()
    db.flush()
    created_at = row.created_at
    side = write_side(path, new.private, f"rotate-{new.kid}")
    try:
        db.commit()
        os.replace(side, path)
    except OSError as e:   # the rename: the key is listed but not in use; the old key keeps signing
        raise SigningKeyUnavailable(f"the new vendor key is listed but could not replace {path}: {e.strerror}; "
                                    f"the previous key stays in use, rotate again") from None
    finally:
        side.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return {"kid": new.kid, "public_key": new.public_b64, "previous_kid": old.kid, "created_at": created_at}


def trusted_keys(db: Session) -> list[dict]:
    """Every key codes or packages may be signed with; the current one first."""
    current = current_key(create=False)
    rows = db.scalars(select(VendorKey).order_by(VendorKey.id.desc())).all()
    out = [{"kid": current.kid, "public_key": current.public_b64, "current": True}]
    out += [{"kid": r.kid, "public_key": r.public_key, "current": False, "retired_at": r.retired_at}
            for r in rows if r.kid != current.kid]
    return out


def trusted_public_keys(db: Session) -> dict[str, Ed25519PublicKey]:
    return {k["kid"]: Ed25519PublicKey.from_public_bytes(base64.b64decode(k["public_key"]))
            for k in trusted_keys(db)}
