"""rate limits: GCRA state per key

Revision ID: 0004_rate_limits
Revises: 0003_amounts_64bit
Create Date: 2026-12-01 21:20:00

One row per counted key (bucket, subject) with its theoretical arrival time
in Unix milliseconds; the index on tat_ms lets expired rows be swept.
"""
from alembic import op
import sqlalchemy as sa

revision = '0004_rate_limits'
down_revision = '0003_amounts_64bit'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rate_limits',
    sa.Column('bucket', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('tat_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'subject', name=op.f('pk_rate_limits'))
    )
    op.create_index(op.f('ix_rate_limits_tat_ms'), 'rate_limits', ['tat_ms'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_rate_limits_tat_ms'), table_name='rate_limits')
    op.drop_table('rate_limits')
