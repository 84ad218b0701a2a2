"""What the MSP sends this vendor (signed, server to server; docs/mall.md):
the issue of tokens for an exchange into this store, and the result of an
exchange out of it. Each message is applied once; its first answer is final."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header

from ...network.signed_routes import signed_caller
from ...schemas.mall import ExchangeResultOut, IssueOut, MemberAuditOut
from ...services import mall, mall_saga
from ..answers import sent
from ..deps import DbSession
from ..problems import problems

router = APIRouter(prefix="/mall", tags=["mall network (server to server)"])

MspCaller = Annotated[str, Depends(signed_caller(mall_saga.msp_key_on_loop))]
MessageId = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=64,
                                  pattern=r"^[\x21-\x7e]{1,64}$")]
Message = Annotated[dict[str, Any], Body()]



@router.post("/issues", response_model=IssueOut, responses=problems(401, 409, 422))
def issue(body: Message, caller: MspCaller, message_id: MessageId):
    """The MSP: credit `tokens` to the linked account of `customer` for an
    exchange into this store, unless the message came after `not_after`."""
    return sent(mall_saga.receive_issue(caller, message_id, body))


@router.post("/exchange-results", response_model=ExchangeResultOut, responses=problems(401, 404, 409, 422))
def exchange_result(body: Message, caller: MspCaller, message_id: MessageId):
    """The MSP: the exchange `operation_id` out of this store completed
    (the held tokens leave) or failed (they go back)."""
    return sent(mall_saga.receive_exchange_result(caller, message_id, body))


@router.get("/audit", response_model=MemberAuditOut, responses=problems(401, 409))
def audit(_caller: MspCaller, db: DbSession):
    """The MSP's audit (tokenrent-server msp admin audit): this store's ledger
    check, its exchange totals, its exchanges and the issues it applied."""
    return mall.audit_view(db)
