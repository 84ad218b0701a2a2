"""FIG 14: the latest backup (signed snapshot) of each member's customer and token records

Revision ID: m0005
Revises: m0004
Create Date: 2026-12-02 04:40:00
"""
from alembic import op
import sqlalchemy as sa

from server_stub.models.base import UTCDateTime

revision = 'm0005'
down_revision = 'm0004'
branch_labels = None
depends_on = None

Amount = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('member_backups',
    sa.Column('member_id', sa.String(length=16), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('ledger_head', Amount, nullable=False),
    sa.Column('taken_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('received_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', Amount, nullable=False),
    sa.Column('users', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.CheckConstraint('ledger_head >= 0 AND size_bytes > 0', name=op.f('ck_member_backups_sizes_not_negative')),
    sa.ForeignKeyConstraint(['member_id'], ['members.member_id'], name=op.f('fk_member_backups_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_member_backups'))
    )


def downgrade() -> None:
    op.drop_table('member_backups')
