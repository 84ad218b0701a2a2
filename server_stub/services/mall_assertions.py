"""Shopping at another member without registering there (DESIGN.md, user-facing
calls): the home member signs a short assertion for its user (a JWT, EdDSA,
its network key); the audience checks it against the issuer's key in the MSP
directory, spends its `jti` once and opens a session for the linked account."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models.base import utcnow
from ..models.mall import MallAssertionUse
from ..models.user import User
from ..network.directory import MSP_ID
from ..network.keys import parse_public_key
from . import mall
from .accounts import open_session, require_active
from .errors import ApiError, Forbidden, Invalid

ASSERTION_TTL = timedelta(minutes=5)
CLOCK_LEEWAY_SECONDS = 30
ALGORITHM = "EdDSA"
TYPE = "tokenrent-mall-assertion+jwt"


class AssertionRefused(ApiError):
    status_code = 401


def issue_assertion(db: Session, user: User, audience: str, network_key: Any) -> tuple[str, datetime]:
    """At the home member: an assertion that `user` is ours, for `audience`
    (an active member, or "msp")."""
    require_active(user)
    row, d = mall.directory(db)
    if audience == row.member_id:
        raise Invalid("an assertion is for another member (or the MSP), not for this store")
    if audience != MSP_ID:
        target = d.member(audience)
        if target is None:
            raise mall.UnknownMember(audience)
        if not target.active:
            raise Forbidden(f"{target.name} is blocked in the mall")
    now = utcnow().replace(microsecond=0)
    expires = now + ASSERTION_TTL
    claims = {"iss": row.member_id, "aud": audience, "sub": str(user.id), "name": user.full_name,
              "jti": uuid.uuid4().hex, "iat": now, "nbf": now, "exp": expires}
    token = jwt.encode(claims, network_key, algorithm=ALGORITHM, headers={"typ": TYPE})
    return token, expires


def session_from_assertion(db: Session, assertion: str, *, refuse_unknown_issuer: bool = True
                           ) -> tuple[str, datetime]:
    """At the audience: check the assertion, spend it, and open a session for
    the linked account of its subject (created on first use). An issuer our
    copy of the directory lacks is refused, or (refuse_unknown_issuer=False)
    raises UnknownMember, so that the caller reads the directory and asks again."""
    row, d = mall.directory(db)
    try:
        header = jwt.get_unverified_header(assertion)
        issuer = str(jwt.decode(assertion, options={"verify_signature": False}).get("iss", ""))
    except jwt.PyJWTError:
        raise AssertionRefused("the assertion is not a JWT") from None
    if header.get("alg") != ALGORITHM or header.get("typ") != TYPE:
        raise AssertionRefused("the assertion is not a mall assertion (EdDSA)")
    member = d.member(issuer)
    if member is None and not refuse_unknown_issuer:
        raise mall.UnknownMember(issuer)
    if member is None or issuer == row.member_id:
        raise AssertionRefused("the assertion's issuer is not another member of this mall")
    if not member.active:
        raise Forbidden(f"{member.name} is blocked in the mall")
    try:
        claims = jwt.decode(assertion, parse_public_key(member.network_key), algorithms=[ALGORITHM],
                            audience=row.member_id, issuer=issuer, leeway=CLOCK_LEEWAY_SECONDS,
                            options={"require": ["iss", "aud", "sub", "jti", "iat", "exp"]})
    except jwt.PyJWTError as e:
        raise AssertionRefused(f"assertion refused: {e}") from None
    lifetime = int(claims["exp"]) - int(claims["iat"])
    if not 0 < lifetime <= ASSERTION_TTL.total_seconds():
        raise AssertionRefused("the assertion lives longer than five minutes")
    try:
        with db.begin_nested():
            db.add(MallAssertionUse(jti=str(claims["jti"])[:64], issuer=issuer,
                                    expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC)))
    except IntegrityError:
        raise AssertionRefused("this assertion was already used") from None
    user = mall.linked_user(db, issuer, str(claims["sub"]), str(claims.get("name") or ""))
    return open_session(db, user)
