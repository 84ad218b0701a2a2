"""The MSP's routes for issuing open tokens, the open catalog and the customers' open
wallet (docs/api.md "The MSP: open tokens"). Thin: each calls one service of
open_tokens.py / msp_sessions.py. Member calls are signed and go through the inbox
(first answer final); the wallet's calls take an MSP session's bearer token."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse

from ..api.answers import sent
from ..api.deps import DbSession, WriteDb
from ..api.problems import problems
from ..db import write_session
from ..network import outbox
from . import open_tokens
from .deps import SignedMemberId
from .exchange_routes import MessageId
from .models import MspInboxMessage
from .msp_sessions import CurrentCustomer, open_session
from .schemas import (
    ActivityOut, BrandProductOut, MemberId, MspSessionIn, MspSessionOut, OpenCatalogOut, OpenGiftOut, OpenIssueOut,
    OpenWalletOut, OutstandingOut, RedeemIn, RedeemOut,
)

router = APIRouter(tags=["open tokens"])


def _received(caller: str, message_id: str, body: Any, apply: Any) -> JSONResponse:
    return sent(outbox.receive(write_session, MspInboxMessage, sender=caller, message_id=message_id, body=body,
                               apply=outbox.applied(apply)))


@router.post("/v1/mall/open-issues", response_model=OpenIssueOut, responses=problems(401, 403, 404, 409, 422))
def open_issue(body: Annotated[dict[str, Any], Body()], caller: SignedMemberId, message_id: MessageId) -> JSONResponse:
    """FIG 18: the customer's home member sold it open tokens (Idempotency-Key =
    operation_id). 200 the lot made (and the gift certificate's reference); a
    refusal is final too: 403 not the member's customer / not the brand's member /
    not in the group, 404 unknown brand or group, 409 a code taken, 422 a wrong price."""
    return _received(caller, message_id, body, lambda db: open_tokens.accept_issue(db, caller, message_id, body))


@router.post("/v1/mall/open-gifts", response_model=OpenGiftOut, responses=problems(401, 403, 404, 409, 422))
def open_gift(body: Annotated[dict[str, Any], Body()], caller: SignedMemberId, message_id: MessageId) -> JSONResponse:
    """The certificate's seller gives its buyer's unspent certificate to another of
    its customers (Idempotency-Key = gift_operation_id); 409 already given,
    redeemed, spent or expired."""
    return _received(caller, message_id, body, lambda db: open_tokens.accept_gift(db, caller, message_id, body))


@router.get("/v1/mall/open-outstanding", response_model=list[OutstandingOut], responses=problems(401))
def open_outstanding(caller: SignedMemberId, db: DbSession) -> list[OutstandingOut]:
    """The caller's open tokens not spent yet, per asset, with what it was paid for them."""
    return open_tokens.outstanding(db, caller)


@router.get("/v1/mall/brand-products", response_model=list[BrandProductOut], responses=problems(401, 404))
def brand_products(caller: SignedMemberId, db: DbSession,
                   member: Annotated[MemberId | None, Query(description="default: the caller")] = None
                   ) -> list[BrandProductOut]:
    """The product list 2103 of a member: which of its products are which brand's."""
    return open_tokens.brand_products(db, member or caller)


@router.get("/v1/mall/open-catalog", response_model=OpenCatalogOut)
def open_catalog(db: DbSession) -> OpenCatalogOut:
    """Public: the open unit's value, the brands, the groups with their discounts,
    how long a gift certificate may live."""
    return open_tokens.catalog(db)


# ---------------------------------------------------------------- the customer's side

@router.post("/v1/sessions", response_model=MspSessionOut, responses=problems(401, 403, 422))
def msp_session(body: MspSessionIn, db: WriteDb) -> MspSessionOut:
    """An assertion of the customer's home member (audience "msp", used once) for
    a one-hour bearer token."""
    token, expires = open_session(db, body.assertion)
    return MspSessionOut(token=token, expires_at=expires)


@router.get("/v1/open-wallet", response_model=OpenWalletOut, responses=problems(401))
def open_wallet(customer: CurrentCustomer, db: DbSession) -> OpenWalletOut:
    return open_tokens.wallet(db, customer.id)


@router.get("/v1/open-wallet/activity", response_model=list[ActivityOut], responses=problems(401, 422))
def open_activity(customer: CurrentCustomer, db: DbSession,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50,
                  before: Annotated[str | None, Query(max_length=40, description="an entry_id")] = None
                  ) -> list[ActivityOut]:
    """The statement of the customer's lots, newest first, with each lot's balance after each line."""
    return open_tokens.activity(db, customer.id, limit=limit, before=before)


@router.post("/v1/open-wallet/redeem", response_model=RedeemOut, responses=problems(401, 404, 409, 423))
def redeem(body: RedeemIn, customer: CurrentCustomer) -> RedeemOut:
    """Take a gift certificate by its code. 404 wrong code (`attempts_left`); 423
    after five wrong codes in 15 minutes, for 15 minutes; 409 already redeemed,
    spent or expired."""
    with write_session() as db:
        outcome = open_tokens.redeem(db, customer.id, body.code)
    if isinstance(outcome, RedeemOut):
        return outcome
    raise outcome   # a wrong code: its record is committed first, then refused
