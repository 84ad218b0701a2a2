"""Typed dependencies of the MSP's routes (besides api/deps.py's DbSession and WriteDb):

- SignedMemberId: the member whose network key signed this request (RFC 9421,
  keyid = member id); 401 problem (`reason`) for an unsigned request, an
  unknown member or a bad signature. Blocked members still pass: a route that
  starts an operation refuses them with members.require_active (403).
"""
from __future__ import annotations

from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Depends
from sqlalchemy import select

from ..db import read_session
from ..network.keys import parse_public_key
from ..network.signatures import KeyResolver
from ..network.signed_routes import signed_caller
from .models import Member


def member_key(key_id: str) -> Ed25519PublicKey | None:
    """The network key of member `key_id`, None for no such member."""
    with read_session() as db:
        text = db.scalar(select(Member.network_key).where(Member.member_id == key_id))
    return parse_public_key(text) if text is not None else None


def _members() -> KeyResolver:
    return member_key


SignedMemberId = Annotated[str, Depends(signed_caller(_members))]
