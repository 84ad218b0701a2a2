"""the MSP's outbox and inbox (server_stub/network/outbox.py)

Revision ID: m0002
Revises: m0001
Create Date: 2026-12-02 00:35:00
"""
from alembic import op
import sqlalchemy as sa

from server_stub.models.base import UTCDateTime

revision = 'm0002'
down_revision = 'm0001'
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('msp_outbox',
    sa.Column('id', RowId, nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('destination', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('path', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('claimed_until', UTCDateTime(timezone=True), nullable=True),
    sa.Column('answer_status', sa.Integer(), nullable=True),
    sa.Column('answer_body', sa.Text(), nullable=True),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=300), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_msp_outbox')),
    sa.UniqueConstraint('message_id', name=op.f('uq_msp_outbox_message_id'))
    )
    op.create_index('ix_msp_outbox_due', 'msp_outbox', ['status', 'next_attempt_at'], unique=False)
    op.create_table('msp_inbox',
    sa.Column('id', RowId, nullable=False),
    sa.Column('sender', sa.String(length=64), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('body_digest', sa.String(length=64), nullable=False),
    sa.Column('answer_status', sa.Integer(), nullable=False),
    sa.Column('answer_body', sa.Text(), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_msp_inbox')),
    sa.UniqueConstraint('sender', 'message_id', name='uq_msp_inbox_sender_message_id')
    )


def downgrade() -> None:
    op.drop_table('msp_inbox')
    op.drop_index('ix_msp_outbox_due', table_name='msp_outbox')
    op.drop_table('msp_outbox')
