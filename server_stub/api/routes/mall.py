"""The mall network for this vendor's users (docs/mall.md): the members, and
exchanges of this store's tokens into another member's (FIG 15)."""
from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from ...models.mall import Exchange
from ...schemas.common import Problem, ShortageProblem
from ...schemas.mall import (
    AssertionCreate, AssertionOut, ExchangeCreate, ExchangeOut, ExchangeQuoteCreate, ExchangeQuoteOut, MallOut,
)
from ...services import mall, mall_assertions, mall_saga
from ...services.errors import NotFound
from ...services.idempotency import run_idempotent
from ..answers import answer
from ...db import read_session, write_session
from ..deps import CurrentUser, DbSession, IdempotencyKey
from ..problems import problems

router = APIRouter(tags=["mall"])

_NOT_IN_MALL = (409, Problem, "this store has not joined a mall")


@router.get("/mall", response_model=MallOut, responses=problems(_NOT_IN_MALL))
def mall_members(db: DbSession):
    """Public: the mall's members as this store last read the MSP's directory."""
    return mall.mall_view(db)


@router.post("/exchange-quotes", status_code=201, response_model=ExchangeQuoteOut,
             responses=problems((403, Problem, "a member is blocked, or does not accept this store's tokens"),
                                (404, Problem, "no such member"), _NOT_IN_MALL, 422))
def quote_exchange(body: ExchangeQuoteCreate, user: CurrentUser):
    """The rate for N of this store's tokens into another member's, locked
    for five minutes: N' move, M arrive (docs/mall.md, money). Quoted on a
    copy of the MSP's directory at most a minute old."""
    def quote():
        with write_session() as db:
            return mall.quote_view(mall.quote_exchange(db, user, body.to_member, body.tokens))
    return mall_saga.with_fresh_directory(quote)


@router.post("/exchanges", status_code=201, response_model=ExchangeOut,
             responses=problems((402, ShortageProblem, "not enough paid tokens for the quote's N'"),
                                (403, Problem, "a member is blocked"), (404, Problem, "no such quote"),
                                (409, Problem, "the quote expired, was used, or a token value changed"), 422))
def confirm_exchange(body: ExchangeCreate, user: CurrentUser, idempotency_key: IdempotencyKey = None):
    """Confirm a quote: the tokens that move are held and the exchange is
    pending until the MSP and the other member have done their part; then
    completed (the tokens left) or failed (they are back)."""
    outcome = run_idempotent(user.id, idempotency_key, "POST /v1/exchanges", body.model_dump(),
                             lambda db: mall_saga.start_exchange(db, user.id, body.quote_id))
    mall_saga.wake()
    return answer(outcome)


@router.get("/exchanges", response_model=list[ExchangeOut])
def my_exchanges(user: CurrentUser, db: DbSession):
    rows = db.scalars(select(Exchange).where(Exchange.user_id == user.id)
                      .order_by(Exchange.created_at.desc()).limit(200)).all()
    return [mall.exchange_view(x) for x in rows]


@router.get("/exchanges/{exchange_id}", response_model=ExchangeOut, responses=problems((404, Problem, "no such exchange")))
def one_exchange(exchange_id: str, user: CurrentUser, db: DbSession):
    x = db.get(Exchange, exchange_id)
    if x is None or x.user_id != user.id:
        raise NotFound("no such exchange")
    return mall.exchange_view(x)


@router.post("/mall-assertions", status_code=201, response_model=AssertionOut,
             responses=problems((403, Problem, "the audience is blocked"), (404, Problem, "no such member"),
                                _NOT_IN_MALL, 422))
def assertion_for(body: AssertionCreate, user: CurrentUser):
    """A five-minute, single-use assertion that the signed-in user is ours,
    for `audience` (another member, or the MSP): POST it to /v1/sessions
    there to shop without registering again."""
    def issue():
        with read_session() as db:
            return mall_assertions.issue_assertion(db, user, body.audience, mall_saga.network_key())
    token, expires = mall_saga.with_fresh_directory(issue)
    return AssertionOut(assertion=token, expires_at=expires)
