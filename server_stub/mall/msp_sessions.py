"""Customers' sessions at the MSP (DESIGN.md, user-facing calls; docs/mall.md "The MSP's
customer sessions and the open wallet"): the storefront asks its home member for an
assertion with audience "msp" (POST /v1/mall-assertions there) and trades it here for a
bearer token of one hour. The assertion is checked as a member checks one
(services/mall_assertions: EdDSA, five minutes, `jti` once) but against the MSP's own
members table; the token is random and only its SHA-256 is stored."""
from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import jwt
from fastapi import Depends
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..api.deps import BearerToken, Unauthorized
from ..db import new_session
from ..models.base import utcnow
from ..network.keys import parse_public_key
from ..services.errors import Forbidden
from ..services.mall_assertions import ALGORITHM, ASSERTION_TTL, CLOCK_LEEWAY_SECONDS, TYPE, AssertionRefused
from . import records
from .models import CustomerRecord, Member, MspAssertionUse, MspSession
from .vocabulary import MSP_ID, MemberStatus

SESSION_TTL = timedelta(hours=1)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _claims(db: Session, assertion: str) -> tuple[Member, dict[str, Any]]:
    try:
        header = jwt.get_unverified_header(assertion)
        issuer = str(jwt.decode(assertion, options={"verify_signature": False}).get("iss", ""))
    except jwt.PyJWTError:
        raise AssertionRefused("the assertion is not a JWT") from None
    if header.get("alg") != ALGORITHM or header.get("typ") != TYPE:
        raise AssertionRefused("the assertion is not a mall assertion (EdDSA)")
    member = db.get(Member, issuer) if issuer else None
    if member is None:
        raise AssertionRefused("the assertion's issuer is not a member of this mall")
    if member.status == MemberStatus.BLOCKED:
        raise Forbidden(f"{member.name} is blocked in the mall", reason="member_blocked")
    try:
        claims = jwt.decode(assertion, parse_public_key(member.network_key), algorithms=[ALGORITHM],
                            audience=MSP_ID, issuer=issuer, leeway=CLOCK_LEEWAY_SECONDS,
                            options={"require": ["iss", "aud", "sub", "jti", "iat", "exp"]})
    except jwt.PyJWTError as e:
        raise AssertionRefused(f"assertion refused: {e}") from None
    lifetime = int(claims["exp"]) - int(claims["iat"])
    if not 0 < lifetime <= ASSERTION_TTL.total_seconds():
        raise AssertionRefused("the assertion lives longer than five minutes")
    return member, claims


def open_session(db: Session, assertion: str, now: datetime | None = None) -> tuple[str, datetime]:
    """Check the assertion, spend its `jti`, and open a session for its subject's
    customer record (created on first use). Returns (token, expires_at)."""
    now = now or utcnow()
    member, claims = _claims(db, assertion)
    try:
        with db.begin_nested():
            db.add(MspAssertionUse(jti=str(claims["jti"])[:64], issuer=member.member_id,
                                   expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC)))
    except IntegrityError:
        raise AssertionRefused("this assertion was already used") from None
    customer = records.customer(db, member.member_id, str(claims["sub"])[:64], str(claims.get("name") or "")[:100])
    # what has expired is of no use to anyone: the customer's old sessions go
    db.execute(delete(MspSession).where(MspSession.customer_id == customer.id, MspSession.expires_at <= now))
    token = secrets.token_urlsafe(32)
    expires = now + SESSION_TTL
    db.add(MspSession(token_sha256=token_digest(token), customer_id=customer.id, expires_at=expires, created_at=now))
    db.flush()
    return token, expires


def customer_for_token(db: Session, token: str, now: datetime | None = None) -> CustomerRecord | None:
    now = now or utcnow()
    return db.scalar(select(CustomerRecord).join(MspSession, MspSession.customer_id == CustomerRecord.id)
                     .where(MspSession.token_sha256 == token_digest(token), MspSession.expires_at > now))


def current_customer(token: BearerToken) -> CustomerRecord:
    """The customer of a bearer token (401 when unknown or expired), read in a short
    transaction and detached (its loaded fields stay readable)."""
    db = new_session(write=False)
    try:
        found = customer_for_token(db, token)
        if found is not None:
            db.expunge(found)
    finally:
        db.rollback()
        db.close()
    if found is None:
        raise Unauthorized("invalid or expired session")
    return found


CurrentCustomer = Annotated[CustomerRecord, Depends(current_customer)]
