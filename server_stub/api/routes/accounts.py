"""Accounts and sessions (FIG 3, 5)."""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from fastapi import Response

from ...db import write_session
from ...services import accounts, ledger, mall, mall_assertions, mall_saga, pricing, rate_limits
from ...schemas.common import Problem
from ...schemas.user import (
    AccountCreate, AccountOut, CurrentSessionOut, MallSessionCreate, MeOut, SessionCreate, SessionOut,
)
from ..deps import BearerToken, ClientAddress, CurrentUser, DbSession, WriteDb
from ..problems import problems

router = APIRouter(tags=["accounts"])


@router.post("/accounts", status_code=status.HTTP_201_CREATED, response_model=AccountOut,
             responses=problems((409, Problem, "the username is taken"), 422, 429))
def register(body: AccountCreate, db: WriteDb, address: ClientAddress):
    rate_limits.count_attempt(rate_limits.REGISTRATION, address)  # every attempt counts; 429 first
    user = accounts.create_user(db, **body.model_dump())
    return AccountOut(id=user.id, username=user.username, status=user.status)


@router.post("/sessions", response_model=SessionOut,
             responses=problems((401, Problem, "wrong username or password, or the assertion is refused"),
                                (403, Problem, "the assertion's home member is blocked in the mall"),
                                (409, Problem, "an assertion, but this store has not joined a mall"),
                                422, 423, 429))
def sign_in(body: SessionCreate | MallSessionCreate, address: ClientAddress):
    """With a username and password; or, at another member of the mall, with
    an assertion from the user's home member (docs/mall.md)."""
    if isinstance(body, MallSessionCreate):
        def sign_on(refuse_unknown_issuer: bool = False) -> tuple[str, datetime]:
            with write_session() as db:
                return mall_assertions.session_from_assertion(db, body.assertion,
                                                              refuse_unknown_issuer=refuse_unknown_issuer)
        try:
            token, expires = sign_on()
        except mall.UnknownMember:   # a member newer than our copy of the directory: read it, then decide
            mall_saga.refresh_directory(force=True)
            token, expires = sign_on(refuse_unknown_issuer=True)
        return SessionOut(token=token, expires_at=expires)
    with rate_limits.sign_in_attempt(address, body.username):
        token, expires = accounts.authenticate(body.username, body.password)
    return SessionOut(token=token, expires_at=expires)


@router.get("/sessions/current", response_model=CurrentSessionOut)
async def current_session(user: CurrentUser):   # no I/O of its own: no worker thread
    """Who am I, cheaply (also the benchmark's trivial authenticated GET)."""
    return {"user_id": user.id, "username": user.username, "role": user.role}


@router.delete("/sessions/current", status_code=status.HTTP_204_NO_CONTENT)
def sign_out(_user: CurrentUser, token: BearerToken, db: WriteDb):
    accounts.revoke_session(db, token)
    return Response(status_code=204)


def me_view(db, user) -> MeOut:
    wallet = ledger.load_wallet(db, user)
    return MeOut(id=user.id, username=user.username, full_name=user.full_name, email=user.email,
                 role=user.role, status=user.status, preferred=user.preferred,
                 available_tokens=wallet.total(), min_tokens=pricing.policy(db).min_tokens,
                 tokens=wallet.breakdown())


def sweep_expired(user_id: int) -> None:
    """Expired lots leave the wallet by a transfer before we show it."""
    with write_session() as wdb:
        ledger.lock_wallets(wdb, user_id)


@router.get("/me", response_model=MeOut)
def me(user: CurrentUser, db: DbSession):
    if ledger.has_due_lots(db, user.id):
        sweep_expired(user.id)
        db.rollback()
    return me_view(db, db.get(type(user), user.id))
