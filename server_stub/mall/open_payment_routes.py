"""The accepting member's open-payment calls at the MSP (signed, docs/mall.md
"Paying with open tokens"). Thin: each calls one service; the three that move
tokens go through the MSP's inbox (applied once, the first answer final)."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from ..api.answers import sent
from ..api.deps import DbSession
from ..api.problems import problems
from . import open_payments
from .deps import SignedMemberId
from .exchange_routes import MessageId
from .schemas import OpenPaymentOut, OpenPlanIn, OpenPlanOut, OpenRefundOut

router = APIRouter(prefix="/v1/mall", tags=["mall"])


@router.post("/open-plans", response_model=OpenPlanOut, responses=problems(401, 403, 422))
def open_plan(body: OpenPlanIn, caller: SignedMemberId, db: DbSession) -> dict[str, Any]:
    """FIG 20A/B: which of the customer's lots would pay the lines at the caller (no hold)."""
    return open_payments.plan(db, caller, body)


@router.post("/open-payments", response_model=OpenPaymentOut, responses=problems(401, 402, 403, 409, 422))
def open_payment(body: Annotated[dict[str, Any], Body()], caller: SignedMemberId,
                 message_id: MessageId) -> JSONResponse:
    """Hold the plan's tokens for the caller (Idempotency-Key = operation_id): 200 authorized,
    or a final 402 (`reason` short, `short_units`, `helpful_kinds`) / 403 / 409 / 422."""
    return sent(open_payments.receive_payment(caller, message_id, body))


@router.post("/open-payment-results", response_model=OpenPaymentOut, responses=problems(401, 403, 404, 409, 422))
def open_payment_result(body: Annotated[dict[str, Any], Body()], caller: SignedMemberId,
                        message_id: MessageId) -> JSONResponse:
    """Confirm or void a held payment (Idempotency-Key `<operation_id>:result`); 409 `reason`
    expired, voided, confirmed, refunded or units_mismatch."""
    return sent(open_payments.receive_result(caller, message_id, body))


@router.post("/open-refunds", response_model=OpenRefundOut, responses=problems(401, 403, 404, 409, 422))
def open_refund(body: Annotated[dict[str, Any], Body()], caller: SignedMemberId,
                message_id: MessageId) -> JSONResponse:
    """Undo a confirmed payment whole (Idempotency-Key = refund_id); 409 `reason`
    change_spent, not_confirmed or already_refunded."""
    return sent(open_payments.receive_refund(caller, message_id, body))
