"""The MSP's routes for FIG 13 notices and settlement statements (signed by
the member, docs/api.md "The MSP"). Thin: each calls one service."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import JSONResponse, PlainTextResponse

from ..api.answers import sent
from ..api.problems import problems
from ..db import read_session, write_session
from ..network import outbox
from . import notifications, settlement
from .deps import SignedMemberId
from .exchange_routes import MessageId
from .models import MspInboxMessage

router = APIRouter(prefix="/v1/mall", tags=["mall"])

@router.post("/notices", responses=problems(401, 404, 422))
def notice(body: Annotated[dict[str, Any], Body()], caller: SignedMemberId, message_id: MessageId) -> JSONResponse:
    """FIG 13 step 5: a member's token sale or spend, applied once (the first answer is final)."""
    return sent(outbox.receive(
        write_session, MspInboxMessage, sender=caller, message_id=message_id, body=body,
        apply=outbox.applied(lambda db: notifications.record_notice(db, caller, message_id, body))))


Format = Annotated[str, Query(pattern="^(json|csv)$", description="json (default) or csv")]


def _rendered(rows: list[dict[str, Any]], fmt: str) -> Any:
    if fmt == "csv":
        return PlainTextResponse(settlement.as_csv(rows), media_type="text/csv")
    return rows


@router.get("/statements", responses=problems(401))
def my_statements(caller: SignedMemberId, format: Format = "json") -> Any:
    """The calling member's statements of the closed periods, oldest first."""
    with read_session() as db:
        return _rendered(settlement.statements(db, member_id=caller), format)


@router.get("/statements/{statement_id}", responses=problems(401, 404))
def my_statement(statement_id: Annotated[int, Path(ge=1)], caller: SignedMemberId, format: Format = "json") -> Any:
    """One of the calling member's statements (another member's is a 404)."""
    with read_session() as db:
        row = settlement.member_statement(db, caller, statement_id)
    return _rendered([row], format) if format == "csv" else row
