"""tokens and cents are 64-bit

Revision ID: 0003_amounts_64bit
Revises: 0002_store
Create Date: 2026-12-01 08:10:00

On PostgreSQL INTEGER is 32-bit: a big token price times a big purchase,
or a balance grown by many purchases, overflowed (a 500). SQLite's INTEGER
is already 64-bit, and the models keep that name there, so it has nothing
to change.
"""
from alembic import op
import sqlalchemy as sa

revision = '0003_amounts_64bit'
down_revision = '0002_store'
branch_labels = None
depends_on = None

COLUMNS = {
    "ledger_accounts": ["balance"],
    "ledger_transfers": ["amount", "from_wallet_after", "to_wallet_after"],
    "ledger_holds": ["amount"],
    "token_purchases": ["gross_cents", "amount_cents"],
    "store_offers": ["tokens"],
    "store_offer_tiers": ["quantity", "tokens"],
    "store_licenses": ["uses", "processings"],
    "store_orders": ["required_tokens", "available_tokens", "balance_after", "cash_cents"],
    "store_order_items": ["quantity", "tokens", "cash_cents"],
}


def _retype(type_) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, columns in COLUMNS.items():
        for column in columns:
            op.alter_column(table, column, type_=type_)


def upgrade() -> None:
    _retype(sa.BigInteger())


def downgrade() -> None:
    _retype(sa.Integer())
