"""Demo data for `serve --demo`, loaded idempotently (safe on every start).
The store (issue 4) extends `load` with its catalog: add a function and
call it from `load`."""
from __future__ import annotations

from sqlalchemy.orm import Session

from .services import accounts, wallet
from .vocabulary import Role

DEMO_ADMIN = {"username": "admin", "password": "admin-demo-pass", "pin": "0000",
              "full_name": "Demo Vendor Admin", "email": "admin@tokenrent.example"}
DEMO_USER = {"username": "demo", "password": "demo-pass-1", "pin": "1234",
             "full_name": "Demo User", "email": "demo@tokenrent.example"}
DEMO_USER_TOKENS = 500  # FIG 8's available tokens (AT)


def load_wallet_demo(db: Session) -> list[str]:
    notes = []
    if accounts.find_user(db, DEMO_ADMIN["username"]) is None:
        # First load only: a restart must not undo what the operator changed since.
        wallet.update_policy(db, token_price_cents=10, min_tokens=100)  # FIG 17: 10 cents a token
        wallet.upsert_bundle(db, "Silver", 100, 5)
        wallet.upsert_bundle(db, "Gold", 200, 10)
        accounts.create_user(db, **DEMO_ADMIN, role=Role.ADMIN)
        notes.append("created admin")
    if accounts.find_user(db, DEMO_USER["username"]) is None:
        accounts.create_user(db, **DEMO_USER)
        wallet.grant_tokens(db, DEMO_USER["username"], DEMO_USER_TOKENS, memo="demo tokens")
        notes.append("created demo user")
    return notes


def load(db: Session) -> list[str]:
    """All demo data. Each part must be idempotent."""
    notes = load_wallet_demo(db)
    from .demo_store import load_store_demo  # FIG 6/7 catalog and the example programs

    notes += load_store_demo(db)
    return notes


def credentials_text() -> str:
    return (f"demo admin: {DEMO_ADMIN['username']} / {DEMO_ADMIN['password']} (PIN {DEMO_ADMIN['pin']}); "
            f"demo user: {DEMO_USER['username']} / {DEMO_USER['password']} (PIN {DEMO_USER['pin']})")
