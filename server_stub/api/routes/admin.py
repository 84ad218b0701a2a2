"""The vendor's operator. Every route here refuses users (403)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from ...models.user import User
from ...models.open_tokens import OpenTokenPurchase
from ...models.wallet import TokenPurchase
from ...schemas.common import Problem
from ...schemas.open_tokens import OpenPurchaseOut
from ...schemas.user import AccountCreate, AccountOut
from ...schemas.wallet import (
    BundleAdminOut, BundleUpsert, GrantCreate, GrantOut, LedgerCheckOut, OffersOut, PolicyUpdate,
    TokenPurchaseOut, UserAdminOut, UserFlagsOut, UserFlagsUpdate,
)
from ...services import accounts, ledger, open_tokens, wallet
from ...services.errors import NotFound
from ...services.idempotency import Outcome, run_idempotent
from ...vocabulary import PurchaseStatus, Role
from ..answers import answer
from ..deps import AdminUser, DbSession, IdempotencyKey, IdPath, WriteDb
from ..problems import ADMINS_ONLY, problems
from .open_tokens import purchase_answer

router = APIRouter(prefix="/admin", tags=["admin"], responses=ADMINS_ONLY)
_SETTLE = problems((404, Problem, "no such token purchase"), (409, Problem, "the purchase is not in a state this allows"), 422)


@router.get("/token-purchases", response_model=list[TokenPurchaseOut])
def list_purchases(_admin: AdminUser, db: DbSession,
                   status: Annotated[PurchaseStatus | None,
                                     Query()] = None):
    q = select(TokenPurchase).order_by(TokenPurchase.id.desc()).limit(500)
    if status:
        q = q.where(TokenPurchase.status == status)
    return [wallet.purchase_view(p) for p in db.scalars(q).all()]


def _once(admin: User, key: str | None, scope: str, payload, operation):
    """Run an operation that moves tokens or money exactly once per Idempotency-Key."""
    return answer(run_idempotent(admin.id, key, scope, payload, operation))


def _settle(admin: User, key: str | None, action: str, purchase_id: int, settle):
    return _once(admin, key, f"POST /v1/admin/token-purchases/{{id}}/{action}", {"purchase_id": purchase_id},
                 lambda db: Outcome(200, wallet.purchase_view(settle(db, purchase_id))))


@router.post("/token-purchases/{purchase_id}/confirm", response_model=TokenPurchaseOut, responses=_SETTLE)
def confirm_purchase(purchase_id: IdPath, admin: AdminUser, idempotency_key: IdempotencyKey = None):
    """Payment received: credits a pending purchase, or settles one on credit."""
    return _settle(admin, idempotency_key, "confirm", purchase_id, wallet.confirm_purchase)


@router.post("/token-purchases/{purchase_id}/credit", response_model=TokenPurchaseOut, responses=_SETTLE)
def credit_purchase(purchase_id: IdPath, admin: AdminUser, idempotency_key: IdempotencyKey = None):
    """FIG 13: credit the tokens before payment; the purchase stays a receivable."""
    return _settle(admin, idempotency_key, "credit", purchase_id, wallet.credit_before_payment)


@router.post("/token-purchases/{purchase_id}/cancel", response_model=TokenPurchaseOut, responses=_SETTLE)
def cancel_purchase(purchase_id: IdPath, admin: AdminUser, idempotency_key: IdempotencyKey = None):
    return _settle(admin, idempotency_key, "cancel", purchase_id, wallet.cancel_purchase)


# ---- open-token purchases (services/open_tokens.py): off-line payments, refunds after a refusal

_OPEN_SETTLE = problems((404, Problem, "no such open-token purchase"),
                        (409, Problem, "the purchase is not in a state this allows, or this store is not in a mall"),
                        422)


@router.get("/open-token-purchases", response_model=list[OpenPurchaseOut])
def list_open_purchases(_admin: AdminUser, db: DbSession,
                        status: Annotated[open_tokens.OpenPurchaseStatus | None, Query()] = None):
    q = select(OpenTokenPurchase).order_by(OpenTokenPurchase.id.desc()).limit(500)
    if status:
        q = q.where(OpenTokenPurchase.status == status)
    return [open_tokens.purchase_view(p) for p in db.scalars(q).all()]


def _settle_open(admin: User, key: str | None, action: str, purchase_id: int, settle):
    outcome = run_idempotent(admin.id, key, f"POST /v1/admin/open-token-purchases/{{id}}/{action}",
                             {"purchase_id": purchase_id}, lambda db: Outcome(200, {"id": settle(db).id}))
    return purchase_answer(outcome, buyer=False)


@router.post("/open-token-purchases/{purchase_id}/confirm", response_model=OpenPurchaseOut, responses=_OPEN_SETTLE)
def confirm_open_purchase(purchase_id: IdPath, admin: AdminUser, idempotency_key: IdempotencyKey = None):
    """Payment received for an off-line purchase: it goes to the MSP to be issued (the
    answer says `issued`, or `pending` while the MSP has not answered)."""
    return _settle_open(admin, idempotency_key, "confirm", purchase_id,
                        lambda db: open_tokens.confirm(db, purchase_id, open_tokens.member_id(db)))


@router.post("/open-token-purchases/{purchase_id}/cancel", response_model=OpenPurchaseOut, responses=_OPEN_SETTLE)
def cancel_open_purchase(purchase_id: IdPath, admin: AdminUser, idempotency_key: IdempotencyKey = None):
    """An off-line purchase never paid, or a failed one (`refund_due`) whose money was given back."""
    return _settle_open(admin, idempotency_key, "cancel", purchase_id,
                        lambda db: open_tokens.cancel(db, purchase_id))


@router.post("/grants", status_code=201, response_model=GrantOut,
             responses=problems((404, Problem, "no such user"), 422))
def grant(body: GrantCreate, admin: AdminUser, idempotency_key: IdempotencyKey = None):
    """Free tokens for a user. A retry with the same Idempotency-Key grants once."""
    def operation(db) -> Outcome:
        user = wallet.grant_tokens(db, body.username, body.tokens, body.kind, body.expires_at, body.memo)
        return Outcome(201, {"username": user.username, "status": user.status,
                             "available_tokens": ledger.available_tokens(db, user)})

    return _once(admin, idempotency_key, "POST /v1/admin/grants", body.model_dump(), operation)


@router.put("/token-policy", response_model=OffersOut)
def set_policy(body: PolicyUpdate, _admin: AdminUser, db: WriteDb):
    wallet.update_policy(db, **body.model_dump())
    return wallet.offers(db)


@router.put("/bundles", response_model=BundleAdminOut)
def set_bundle(body: BundleUpsert, _admin: AdminUser, db: WriteDb):
    b = wallet.upsert_bundle(db, body.name, body.tokens, body.discount_percent, body.active)
    return wallet.bundle_admin_view(b)


@router.patch("/users/{user_id}", response_model=UserFlagsOut,
              responses=problems((404, Problem, "no such user"),
                                 (409, Problem, "the limit is below what the user has drawn (`debt`)"), 422))
def set_user_flags(user_id: IdPath, body: UserFlagsUpdate, _admin: AdminUser, db: WriteDb):
    user = db.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    if body.negative_limit is not None:
        wallet.set_negative_limit(db, user.username, body.negative_limit)
    if body.preferred is not None:
        wallet.set_preferred(db, user.username, body.preferred)
    return {"id": user.id, "username": user.username, "negative_limit": user.negative_limit,
            "preferred": user.preferred}


@router.post("/admins", status_code=201, response_model=AccountOut,
             responses=problems((409, Problem, "the username is taken"), 422))
def create_admin(body: AccountCreate, _admin: AdminUser, db: WriteDb):
    user = accounts.create_user(db, **body.model_dump(), role=Role.ADMIN)
    return AccountOut(id=user.id, username=user.username, status=user.status)


@router.get("/users", response_model=list[UserAdminOut])
def list_users(_admin: AdminUser, db: DbSession):
    rows = db.scalars(select(User).order_by(User.id).limit(1000)).all()
    return [{"id": u.id, "username": u.username, "full_name": u.full_name, "role": u.role,
             "status": u.status, "preferred": u.preferred, "negative_limit": u.negative_limit}
            for u in rows]


@router.get("/ledger-check", response_model=LedgerCheckOut)
def ledger_check(_admin: AdminUser, db: DbSession):
    """Conservation check: per currency the sum is zero, caches match transfers."""
    r = ledger.verify_ledger(db)
    return LedgerCheckOut(ok=r.ok, totals=r.totals, mismatched_accounts=r.mismatched_accounts,
                          negative_wallets=r.negative_wallets)
