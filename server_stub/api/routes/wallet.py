"""The user's wallet: offers, token purchases, transfers, statement."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from ...models.wallet import TokenPurchase
from ...schemas.common import MAX_ID, CardDeclinedProblem, LockedProblem, Problem, ShortageProblem
from ...schemas.wallet import (
    LedgerOut, OffersOut, TokenPurchaseCreate, TokenPurchaseOut, TransferCreate, TransferOut,
)
from ...services import accounts, ledger, rate_limits, wallet
from ...services.errors import NotFound
from ...services.idempotency import run_idempotent
from ...vocabulary import PaymentMethod
from ..answers import answer
from ..deps import Credentials, CurrentUser, DbSession, IdempotencyKey, IdPath, SignedIn
from ..worker import in_worker
from ..problems import problems
from .accounts import sweep_expired

router = APIRouter(tags=["wallet"])


@router.get("/token-offers", response_model=OffersOut)
def token_offers(db: DbSession):
    """Public: the vendor's token price and bundles (signed-in preferred
    customers see their discount through GET /v1/me's `preferred`)."""
    return wallet.offers(db)


@router.get("/token-offers/mine", response_model=OffersOut)
def my_token_offers(user: CurrentUser, db: DbSession):
    """The offers with this user's preferred-customer discount applied."""
    return wallet.offers(db, user)


@router.post(
    "/token-purchases", status_code=201, response_model=TokenPurchaseOut,
    responses={202: {"model": TokenPurchaseOut, "description": "off-line: pending payment"},
               **problems((402, CardDeclinedProblem, "card declined (the purchase is recorded as declined)"),
                          (404, Problem, "no such bundle"), 422,
                          (423, LockedProblem, "card purchases locked after repeated declines"), 429)},
)
async def buy_tokens(body: TokenPurchaseCreate, signed_in: SignedIn, idempotency_key: IdempotencyKey = None):
    return await in_worker(_buy_tokens, body, signed_in, idempotency_key)


def _buy_tokens(body: TokenPurchaseCreate, signed_in: Credentials, idempotency_key: str | None):
    caller = signed_in.card_caller()
    user = caller.user
    if body.method == PaymentMethod.CARD:
        caller.refuse_if_limited()  # 429 before anything runs: too many declined cards
    outcome = run_idempotent(
        user.id, idempotency_key, "POST /v1/token-purchases", body.model_dump(),
        rate_limits.counting_declines(caller.address, user.username,
                                      lambda db: wallet.buy_tokens(db, user.id, **body.model_dump())),
        lock_user=True)   # a card is charged: a parallel duplicate must replay, not charge again
    return answer(outcome)


@router.get("/token-purchases", response_model=list[TokenPurchaseOut])
def my_token_purchases(user: CurrentUser, db: DbSession):
    rows = db.scalars(select(TokenPurchase).where(TokenPurchase.user_id == user.id)
                      .order_by(TokenPurchase.id.desc()).limit(500)).all()
    return [wallet.purchase_view(p) for p in rows]


@router.get("/token-purchases/{purchase_id}", response_model=TokenPurchaseOut, responses=problems(404, 422))
def my_token_purchase(purchase_id: IdPath, user: CurrentUser, db: DbSession):
    p = db.get(TokenPurchase, purchase_id)
    if p is None or p.user_id != user.id:  # another user's purchase does not exist for you
        raise NotFound("no such token purchase")
    return wallet.purchase_view(p)


@router.post(
    "/transfers", status_code=201, response_model=TransferOut,
    responses=problems((402, ShortageProblem, "not enough transferable tokens"),
                       (403, Problem, "wrong PIN (`type` .../wrong-pin), or the account is inactive "
                                      "(`type` .../account-inactive)"),
                       (404, Problem, "no user with that username and full name"), 422,
                       (423, LockedProblem, "PIN entries locked after repeated wrong PINs"), 429),
)
async def transfer_tokens(body: TransferCreate, signed_in: SignedIn, idempotency_key: IdempotencyKey = None):
    """FIG 11: PIN, recipient's username and full name must match; only
    standard (transferable) tokens move."""
    return await in_worker(_transfer_tokens, body, signed_in, idempotency_key)


def _transfer_tokens(body: TransferCreate, signed_in: Credentials, idempotency_key: str | None):
    caller = signed_in.pin_caller()
    user = caller.user
    pin_ok = accounts.pin_matches(user, body.pin)  # argon2, outside the write transaction
    if not pin_ok:  # a guess: counted before the transfer runs (429 once over the limit)
        rate_limits.count_attempt(rate_limits.PIN, caller.address, user.username)
    fields = body.model_dump(exclude={"pin"})
    outcome = run_idempotent(
        # the PIN stays out of the stored fingerprint (a short PIN's hash is guessable)
        user.id, idempotency_key, "POST /v1/transfers", fields,
        lambda db: wallet.transfer(db, user.id, **fields, pin_verified=pin_ok),
    )
    return answer(outcome)


@router.get("/ledger", response_model=LedgerOut)
def my_ledger(user: CurrentUser, db: DbSession,
              limit: Annotated[int, Query(ge=1, le=1000)] = 200,
              before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None):
    """The statement: every movement, newest first, with the balance after it."""
    if ledger.has_due_lots(db, user.id):
        sweep_expired(user.id)
        db.rollback()
    return {"available_tokens": ledger.available_tokens(db, db.get(type(user), user.id)),
            "entries": ledger.statement(db, user.id, limit, before_id)}
