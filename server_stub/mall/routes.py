"""The MSP's routes under /v1/mall/ (docs/api.md "The MSP"). Thin: each
validates, calls one service and renders its answer; every answer to a signed
request is signed with the MSP's key (SignAnswersMiddleware in app.py)."""
from __future__ import annotations

from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse

from ..api.deps import DbSession, WriteDb
from ..api.problems import problems
from ..api.routes.store import _none_match   # If-None-Match, compared as RFC 9110 says
from ..network.keys import parse_public_key
from ..network.signed_routes import signed_caller
from ..schemas.common import Problem
from ..services.errors import Forbidden, Invalid
from . import directory, members
from .identity import msp_key, msp_public_text
from .deps import SignedMemberId
from .schemas import DirectoryOut, JoinIn, JoinOut, MemberChange, MemberId, MemberOut
from .vocabulary import JOINING_KEY_ID

router = APIRouter(prefix="/v1/mall", tags=["mall"])

_SIGNATURE_REFUSED = (401, Problem, "the request is not signed by the key it brings (`reason` says why)")
_INVITATION_REFUSED = (403, Problem, "the invitation is unknown, used or expired (`reason`)")
_KEY_TAKEN = (409, Problem, "the network key already belongs to another member")


async def joining_request(request: Request, body: JoinIn) -> JoinIn:
    """The join body, once its request is proven signed (RFC 9421, keyid
    `joining`) by the network key it carries: proof of possession."""
    try:
        key = parse_public_key(body.network_key)
    except ValueError as e:
        raise Invalid(f"network_key: {e}") from None

    async def joining_key(key_id: str) -> Ed25519PublicKey | None:
        return key if key_id == JOINING_KEY_ID else None

    await signed_caller(joining_key)(request)
    return body


@router.post("/members", status_code=201, response_model=JoinOut,
             responses=problems(_SIGNATURE_REFUSED, _INVITATION_REFUSED, _KEY_TAKEN, 422))
def join(body: Annotated[JoinIn, Depends(joining_request)], db: WriteDb) -> JoinOut:
    """A vendor joins with its one-time invitation. The answer (member id, the
    MSP's key to pin, the directory version) is final: the same vendor asking
    again with its used invitation gets it again."""
    joined = members.join(db, body)
    return JoinOut(member_id=joined.member.member_id, msp_key=msp_public_text(),
                   directory_version=joined.directory_version)


@router.get("/directory", response_model=DirectoryOut, responses={304: {"description": "not modified"}})
def get_directory(request: Request, db: DbSession) -> Response:
    """Every member, the version, and each member's MSP-signed entry. The ETag
    is the version; If-None-Match with it answers 304."""
    current = directory.current(db, msp_key())
    headers = {"ETag": directory.etag(current.version), "Cache-Control": "no-cache"}
    if _none_match(request.headers.get("if-none-match"), str(current.version)):
        return Response(status_code=304, headers=headers)
    return JSONResponse(current.model_dump(mode="json"), headers=headers)


@router.patch("/members/{member_id}", response_model=MemberOut,
              responses=problems((401, Problem, "not signed by a member (`reason` says why)"),
                                 (403, Problem, "a member changes only its own record"), 422))
def update_member(member_id: Annotated[MemberId, Path()], body: MemberChange, caller: SignedMemberId,
                  db: WriteDb) -> MemberOut:
    """A member changes its own name, base URL or code-signing keys (all it
    still trusts, after a key rotation); the directory's version moves."""
    if caller != member_id:
        raise Forbidden("a member changes only its own record")
    return members.member_views(db, [members.update_own(db, member_id, body)])[0]


@router.get("/members/{member_id}", response_model=MemberOut, responses=problems((404, Problem, "no such member")))
def get_member(member_id: Annotated[MemberId, Path()], db: DbSession) -> MemberOut:
    """One member object, as the directory lists it."""
    return members.member_views(db, [members.get_member(db, member_id)])[0]
