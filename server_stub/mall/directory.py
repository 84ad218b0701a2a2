"""The directory (GET /v1/mall/directory): every member object, its version,
and per member a signed entry: a JWT (EdDSA, the MSP's network key) whose
claims are the member object plus `iss` "msp", `iat` and `ver` (the version).
A storefront hands an entry to the license agent (`license-agent trust ENTRY`),
which checks it against the pinned MSP key.

The body is a function of the version: `issued_at` and every `iat` are the
time the version came to be, and Ed25519 signatures are deterministic, so the
version is a strong ETag. Each process keeps the last body it built per
database (keyed by version and key), never anything that matters."""
from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.orm import Session

from ..network.keys import public_key_text
from . import members
from .schemas import DirectoryOut, MemberOut, MspOut
from .vocabulary import MSP_ID

ENTRY_ALGORITHM = "EdDSA"
ENTRY_CLAIMS = ("iss", "iat", "ver", "member_id", "network_key", "code_keys", "status")

_built: dict[str, tuple[tuple[int, str], DirectoryOut]] = {}
_lock = threading.Lock()


def sign_entry(member: MemberOut, version: int, issued_at: datetime, key: Ed25519PrivateKey) -> str:
    claims = {**member.model_dump(mode="json"), "iss": MSP_ID, "iat": int(issued_at.timestamp()), "ver": version}
    return jwt.encode(claims, key, algorithm=ENTRY_ALGORITHM, headers={"kid": MSP_ID})


def verify_entry(entry: str, msp_key: Ed25519PublicKey) -> dict[str, Any]:
    """The member object of an entry signed by `msp_key` (plus iss, iat, ver);
    jwt.InvalidTokenError for anything else."""
    claims: dict[str, Any] = jwt.decode(entry, msp_key, algorithms=[ENTRY_ALGORITHM], issuer=MSP_ID,
                                        options={"require": list(ENTRY_CLAIMS)})
    return claims


def current(db: Session, key: Ed25519PrivateKey) -> DirectoryOut:
    """The directory at its current version (built once per version and key).
    PostgreSQL reads each statement afresh: a version that moved while the
    members were read is built again, so a body never mixes two versions."""
    msp = MspOut(network_key=public_key_text(key))
    where = db.get_bind().engine.url.render_as_string()
    version, issued_at = members.directory_version(db)
    while True:
        with _lock:
            cached = _built.get(where)
        if cached is not None and cached[0] == (version, msp.network_key):
            return cached[1]
        views = members.member_views(db, members.all_members(db))
        again = members.directory_version(db)
        if again != (version, issued_at):
            version, issued_at = again
            continue
        built = DirectoryOut(version=version, issued_at=issued_at, msp=msp, members=views,
                             entries={m.member_id: sign_entry(m, version, issued_at, key) for m in views})
        with _lock:
            _built[where] = ((version, msp.network_key), built)
        return built


def etag(version: int) -> str:
    return f'"{version}"'
