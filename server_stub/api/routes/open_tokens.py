"""Open tokens sold here for the mall network (services/open_tokens.py): the
offers, purchases (card or off-line), and giving a gift certificate."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import select

from ...db import read_session
from ...models.open_tokens import OpenTokenPurchase
from ...schemas.common import CardDeclinedProblem, LockedProblem, Problem
from ...schemas.open_tokens import GiveIn, GiveOut, OpenOffersOut, OpenPurchaseCreate, OpenPurchaseOut
from ...services import accounts, open_tokens, rate_limits
from ...services.errors import Conflict
from ...services.idempotency import Outcome, run_idempotent
from ...vocabulary import PaymentMethod
from ..answers import answer
from ..deps import CardCaller, CurrentUser, DbSession, IdempotencyKey, IdPath, PinCaller
from ..problems import problems

router = APIRouter(tags=["open tokens"])

NOT_IN_MALL = (409, Problem, "this store has not joined a mall")
MSP_DOWN = (503, Problem, "the MSP did not answer (`reason` msp_unreachable): nothing was sold")
OperationId = Annotated[str, Path(min_length=36, max_length=36, description="the certificate's operation_id",
                                  pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]


def _member_and_catalog() -> tuple[str, open_tokens.Catalog | None]:
    """Before the write transaction: who we are, and the MSP's prices (None when
    it does not answer: the operation then refuses with 503, and a replay still
    answers what was stored)."""
    with read_session() as db:
        member = open_tokens.member_id(db)
    try:
        return member, open_tokens.catalog()
    except open_tokens.MspUnreachable:
        return member, None


def purchase_answer(outcome: Outcome, *, buyer: bool = True) -> JSONResponse:
    """A purchase's first answer or its replay: the same status code and the same
    purchase, as it stands now (pending becomes issued once the MSP answered).
    A pending purchase is delivered to the MSP now, waiting a few seconds for it."""
    if outcome.status_code >= 400:
        return answer(outcome)
    purchase_id = int(outcome.body["id"])
    with read_session() as db:
        p = db.get(OpenTokenPurchase, purchase_id)
        assert p is not None
        pending, operation_id = p.status == open_tokens.OpenPurchaseStatus.PENDING, p.operation_id
    if pending:
        open_tokens.deliver_now(operation_id)
    with read_session() as db:
        p = db.get(OpenTokenPurchase, purchase_id)
        assert p is not None
        view = open_tokens.buyer_view(p) if buyer else open_tokens.purchase_view(p)
    return JSONResponse(status_code=outcome.status_code, content=jsonable_encoder(view))


@router.get("/open-token-offers", response_model=OpenOffersOut, responses=problems(NOT_IN_MALL, MSP_DOWN))
def open_token_offers():
    """Public: the open tokens this store sells for the mall (the MSP's catalog, read
    at most once a minute), with the expiry of the gift certificates it sells."""
    with read_session() as db:
        member = open_tokens.member_id(db)
    cat = open_tokens.catalog()
    with read_session() as db:
        return open_tokens.offers(db, cat, member)


@router.post(
    "/open-token-purchases", status_code=201, response_model=OpenPurchaseOut,
    responses={202: {"model": OpenPurchaseOut, "description": "off-line: awaiting payment"},
               **problems((402, CardDeclinedProblem, "card declined (the purchase is recorded as declined)"),
                          (403, Problem, "wrong PIN (`type` .../wrong-pin), a group this store is not in, or "
                                         "a user of another member (buy at your home member)"),
                          (404, Problem, "no recipient with that username and full name"), NOT_IN_MALL, 422,
                          (423, LockedProblem, "PIN entries or card purchases locked after repeated failures"),
                          429, MSP_DOWN)},
)
def buy_open_tokens(body: OpenPurchaseCreate, caller: CardCaller, idempotency_key: IdempotencyKey = None):
    """Card: charged, then issued by the MSP (201; `status` issued, or pending while the
    MSP has not answered); off-line: 202 `awaiting_payment` until the operator confirms."""
    user = caller.user
    if body.method == PaymentMethod.CARD:
        caller.refuse_if_limited()   # 429 before anything runs: too many declined cards
    pin_ok = accounts.pin_matches(user, body.pin)   # argon2, outside the write transaction
    if not pin_ok:
        rate_limits.count_attempt(rate_limits.PIN, caller.address, user.username)
    member, cat = _member_and_catalog()
    fields = body.model_dump(exclude={"pin"})   # the PIN stays out of the stored fingerprint
    outcome = run_idempotent(
        user.id, idempotency_key, "POST /v1/open-token-purchases", fields,
        rate_limits.counting_declines(caller.address, user.username, lambda db: open_tokens.buy(
            db, user.id, cat=cat, member_id=member, **fields, pin_verified=pin_ok)))
    return purchase_answer(outcome)


@router.get("/open-token-purchases", response_model=list[OpenPurchaseOut])
def my_open_token_purchases(user: CurrentUser, db: DbSession):
    return [open_tokens.buyer_view(p) for p in open_tokens.own_purchases(db, user.id)]


@router.get("/open-token-purchases/{purchase_id}", response_model=OpenPurchaseOut, responses=problems(404, 422))
def my_open_token_purchase(purchase_id: IdPath, user: CurrentUser, db: DbSession):
    return open_tokens.buyer_view(open_tokens.own_purchase(db, user.id, purchase_id))


@router.post(
    "/gift-certificates/{operation_id}/give", response_model=GiveOut,
    responses={202: {"model": GiveOut, "description": "sent to the MSP, no answer yet"},
               **problems((403, Problem, "wrong PIN (`type` .../wrong-pin)"),
                          (404, Problem, "no such certificate of yours, or no user with that username and "
                                         "full name"),
                          (409, Problem, "not issued, already given, or refused by the MSP (`reason` refused)"),
                          422, (423, LockedProblem, "PIN entries locked after repeated wrong PINs"), 429)},
)
def give_certificate(operation_id: OperationId, body: GiveIn, caller: PinCaller,
                     idempotency_key: IdempotencyKey = None):
    """FIG 11 for a gift certificate: the recipient's username and full name must match
    a user of this store; the MSP moves the certificate (200 given, 202 while pending)."""
    user = caller.user
    pin_ok = accounts.pin_matches(user, body.pin)
    if not pin_ok:
        rate_limits.count_attempt(rate_limits.PIN, caller.address, user.username)
    with read_session() as db:
        member = open_tokens.member_id(db)
    fields = body.model_dump(exclude={"pin"})
    outcome = run_idempotent(
        user.id, idempotency_key, "POST /v1/gift-certificates/{operation_id}/give",
        {"operation_id": operation_id, **fields},
        lambda db: open_tokens.give(db, user.id, operation_id, member_id=member, **fields, pin_verified=pin_ok))
    if outcome.status_code >= 400:
        return answer(outcome)
    give_id = str(outcome.body["operation_id"])
    open_tokens.deliver_now(give_id)
    with read_session() as db:
        p = db.scalar(select(OpenTokenPurchase).where(OpenTokenPurchase.give_operation_id == give_id))
        status, view = open_tokens.give_view(p, give_id, operation_id)
    if status >= 400:
        detail = str(view.pop("detail"))
        raise Conflict(detail, **view)
    return JSONResponse(status_code=status, content=view)
