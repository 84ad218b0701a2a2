"""What members send the MSP to start an operation (signed, docs/mall.md)."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header
from fastapi.responses import JSONResponse

from ..api.answers import sent
from ..api.problems import problems
from . import saga
from .deps import SignedMemberId

router = APIRouter(prefix="/v1/mall", tags=["mall"])

MessageId = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=64,
                                  pattern=r"^[\x21-\x7e]{1,64}$")]



@router.post("/exchanges", status_code=202, responses=problems(401, 403, 404, 409, 422))
def exchange(body: Annotated[dict[str, Any], Body()], caller: SignedMemberId, message_id: MessageId) -> JSONResponse:
    """A home member's exchange (FIG 15): 202 pending (the other member is
    asked to issue; the result comes back as a message), or a final refusal."""
    return sent(saga.receive_exchange(caller, message_id, body))
