"""FIG 14 at the MSP (docs/mall.md, "FIG 14: backups and restore"): a member
sends its signed snapshot, and reads back its own latest one. Thin: each
calls one service (backups.py)."""
from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from ..api.answers import sent
from ..api.problems import problems
from ..db import read_session, write_session
from ..network import outbox
from ..schemas.common import Problem
from ..services.errors import ApiError, Invalid
from . import backups
from .deps import SignedMemberId
from .exchange_routes import MessageId
from .models import MspInboxMessage
from .schemas import BackupLatestOut, BackupStoredOut

router = APIRouter(prefix="/v1/mall", tags=["mall"])


async def backup_body(request: Request) -> Any:
    """The body, refused (413) above the limit before it is read; resolved
    before the signature check, which reads the body too."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise ApiError("a backup needs a Content-Length", 411)
    if int(length) > backups.MAX_BACKUP_BYTES:
        raise backups.TooLarge(int(length))
    try:
        return json.loads(await request.body())
    except ValueError:
        raise Invalid("the backup is not JSON") from None


@router.post("/backups", response_model=BackupStoredOut,
             responses=problems(401, 403, 404, (411, Problem, "no Content-Length"),
                                (413, Problem, f"larger than {backups.MAX_BACKUP_BYTES} bytes"), 422))
def post_backup(body: Annotated[Any, Depends(backup_body)], caller: SignedMemberId,
                message_id: MessageId) -> JSONResponse:
    """A member's signed snapshot of its customer and token records. Kept if
    later than the stored one (by ledger head, then taken_at); an older one
    answers 200 with the stored one and changes nothing. Applied once per
    message id (the first answer is final)."""
    return sent(outbox.receive(
        write_session, MspInboxMessage, sender=caller, message_id=message_id, body=body,
        apply=outbox.applied(lambda db: backups.store_backup(db, caller, message_id, body))))


@router.get("/backups/latest", response_model=BackupLatestOut,
            responses=problems(401, (403, Problem, "another member's backup"), (404, Problem, "no backup yet")))
def latest_backup(caller: SignedMemberId,
                  member: Annotated[str | None, Query(max_length=16, description="only the caller itself")] = None
                  ) -> Any:
    """The calling member's latest backup, its movements still pending at the
    MSP (`pending_movements`) and those that ended after the snapshot."""
    with read_session() as db:
        return backups.latest_backup(db, caller, member)
