"""`tokenrent-server admin ...`: the vendor operator's commands. They work on
the database directly (same services as the HTTP admin routes).

Commands are registered in `admin_registry` (see there how to add one); the
wallet's are here, the store's in `admin_store_cli`.
"""
from __future__ import annotations

import argparse
import getpass
import os
from datetime import datetime

from sqlalchemy import select

from .admin_registry import VENDOR, arg, command
from .db import write_session
from .models.open_tokens import OpenTokenPurchase
from .models.wallet import TokenPurchase
from .services import accounts, ledger, open_tokens, wallet
from .services.errors import ApiError
from .vocabulary import Role, TokenKind


def _secret(value: str | None, env: str, prompt: str) -> str:
    if value:
        return value
    if os.environ.get(env):
        return os.environ[env]
    return getpass.getpass(prompt)


@command("create-admin", "create a vendor admin account",
         arg("--username", required=True), arg("--password"), arg("--pin", default=None),
         arg("--full-name", default="Vendor Admin"), arg("--email", default="admin@example.com"))
def _create_admin(db, a):
    from .schemas.user import AccountCreate
    password = _secret(a.password, "TOKENRENT_ADMIN_PASSWORD", "password: ")
    pin = a.pin or os.environ.get("TOKENRENT_ADMIN_PIN") or "0000"
    body = AccountCreate(username=a.username, password=password, pin=pin, full_name=a.full_name,
                         email=a.email)
    user = accounts.create_user(db, **body.model_dump(), role=Role.ADMIN)
    return {"id": user.id, "username": user.username, "role": user.role}


@command("reset-credentials", "give a user a new password and PIN (ends lockouts, signs out every session)",
         arg("username"), arg("--password", help="default: $TOKENRENT_NEW_PASSWORD, else asked"),
         arg("--pin", help="default: $TOKENRENT_NEW_PIN, else asked"))
def _reset_credentials(db, a):
    from .schemas.user import CredentialsReset
    body = CredentialsReset(password=_secret(a.password, "TOKENRENT_NEW_PASSWORD", "new password: "),
                            pin=_secret(a.pin, "TOKENRENT_NEW_PIN", "new PIN: "))
    user = accounts.reset_credentials(db, a.username, body.password, body.pin)
    return {"username": user.username, "status": user.status, "sessions_revoked": True}


@command("list-purchases", "list token purchases", arg("--status", default=None))
def _list(db, a):
    q = select(TokenPurchase).order_by(TokenPurchase.id)
    if a.status:
        q = q.where(TokenPurchase.status == a.status)
    return [wallet.purchase_view(p) for p in db.scalars(q).all()]


@command("confirm-purchase", "payment received for an off-line purchase (or a receivable)",
         arg("purchase_id", type=int))
def _confirm(db, a):
    return wallet.purchase_view(wallet.confirm_purchase(db, a.purchase_id))


@command("credit-purchase", "credit an off-line purchase's tokens before payment (receivable)",
         arg("purchase_id", type=int))
def _credit(db, a):
    return wallet.purchase_view(wallet.credit_before_payment(db, a.purchase_id))


@command("cancel-purchase", "cancel a pending off-line purchase", arg("purchase_id", type=int))
def _cancel(db, a):
    return wallet.purchase_view(wallet.cancel_purchase(db, a.purchase_id))


@command("list-open-purchases", "list open-token purchases (sold here for the mall network)",
         arg("--status", default=None, choices=list(open_tokens.OpenPurchaseStatus)))
def _list_open(db, a):
    q = select(OpenTokenPurchase).order_by(OpenTokenPurchase.id)
    if a.status:
        q = q.where(OpenTokenPurchase.status == a.status)
    return [open_tokens.purchase_view(p) for p in db.scalars(q).all()]


@command("confirm-open-purchase", "payment received for an off-line open-token purchase: the MSP issues it "
         "(the running server delivers it)", arg("purchase_id", type=int))
def _confirm_open(db, a):
    return open_tokens.purchase_view(open_tokens.confirm(db, a.purchase_id, open_tokens.member_id(db)))


@command("cancel-open-purchase", "cancel an unpaid off-line open-token purchase, or close a failed one "
         "whose money was given back", arg("purchase_id", type=int))
def _cancel_open(db, a):
    return open_tokens.purchase_view(open_tokens.cancel(db, a.purchase_id))


@command("set-gift-certificate-days", "the expiry of the gift certificates this store sells, in days",
         arg("days", type=int))
def _gift_days(db, a):
    return {"gift_certificate_days": open_tokens.set_gift_certificate_days(db, a.days)}


@command("grant", "grant free tokens to a user",
         arg("username"), arg("tokens", type=int),
         arg("--kind", choices=list(TokenKind), default=TokenKind.STANDARD),
         arg("--expires-at", type=datetime.fromisoformat, default=None,
             help="RFC 3339 / ISO time with offset, e.g. 2027-01-01T00:00:00+00:00"),
         arg("--memo", default=""))
def _grant(db, a):
    if a.expires_at is not None and a.expires_at.tzinfo is None:
        raise ApiError("--expires-at needs a UTC offset, e.g. +00:00")
    user = wallet.grant_tokens(db, a.username, a.tokens, a.kind, a.expires_at, a.memo)
    return {"username": user.username, "status": user.status,
            "available_tokens": ledger.available_tokens(db, user)}


@command("set-negative-limit", "let a wallet draw below zero down to -TOKENS",
         arg("username"), arg("tokens", type=int))
def _neg(db, a):
    u = wallet.set_negative_limit(db, a.username, a.tokens)
    return {"username": u.username, "negative_limit": u.negative_limit}


@command("set-policy", "set the token price, minimum (MT), preferred discount, registration grant",
         arg("--token-price-cents", type=int), arg("--min-tokens", type=int),
         arg("--preferred-discount-percent", type=float), arg("--registration-grant-tokens", type=int))
def _policy(db, a):
    wallet.update_policy(db, token_price_cents=a.token_price_cents, min_tokens=a.min_tokens,
                         preferred_discount_percent=a.preferred_discount_percent,
                         registration_grant_tokens=a.registration_grant_tokens)
    return wallet.offers(db)


@command("set-bundle", "create or change a token bundle",
         arg("name"), arg("tokens", type=int), arg("discount_percent", type=float),
         arg("--inactive", action="store_true"))
def _bundle(db, a):
    b = wallet.upsert_bundle(db, a.name, a.tokens, a.discount_percent, not a.inactive)
    return wallet.bundle_admin_view(b)


@command("set-preferred", "mark (or unmark) a preferred customer",
         arg("username"), arg("--off", action="store_true"))
def _preferred(db, a):
    u = wallet.set_preferred(db, a.username, not a.off)
    return {"username": u.username, "preferred": u.preferred}


@command("verify-ledger", "check conservation: sums zero, caches equal transfers")
def _verify(db, a):
    r = ledger.verify_ledger(db)
    return {"ok": r.ok, "totals": r.totals, "mismatched_accounts": r.mismatched_accounts,
            "negative_wallets": r.negative_wallets}


# The store's commands register on import; imported after the wallet's so --help lists those first.
from . import admin_store_cli  # noqa: E402,F401
from . import admin_mall_cli  # noqa: E402,F401


def add_parser(sub) -> None:
    p = sub.add_parser("admin", help="vendor operator commands")
    p.add_argument("--db", help="database URL (default: the SQLite file in the data dir)")
    p.add_argument("--data-dir")
    VENDOR.add_parsers(p, "admin_command")


def run(a: argparse.Namespace) -> int:
    return VENDOR.run(a.admin_command, a, write_session)
