"""settlement: token notices (FIG 13), settled movements, period summaries, payout instructions; one open period

Revision ID: m0003
Revises: m0002
Create Date: 2026-12-02 00:39:27
"""
from alembic import op
import sqlalchemy as sa
import server_stub.models.base


revision = 'm0003'
down_revision = 'm0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('payout_instructions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('period_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.String(length=16), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('cents', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('instruction_key', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('bank_reference', sa.String(length=64), nullable=True),
    sa.Column('created_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('cents > 0', name=op.f('ck_payout_instructions_positive_cents')),
    sa.ForeignKeyConstraint(['member_id'], ['members.member_id'], name=op.f('fk_payout_instructions_member_id_members')),
    sa.ForeignKeyConstraint(['period_id'], ['periods.id'], name=op.f('fk_payout_instructions_period_id_periods')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payout_instructions')),
    sa.UniqueConstraint('instruction_key', name=op.f('uq_payout_instructions_instruction_key')),
    sa.UniqueConstraint('period_id', 'member_id', name='uq_payout_instructions_period_member')
    )
    with op.batch_alter_table('payout_instructions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payout_instructions_member_id'), ['member_id'], unique=False)

    op.create_table('period_summaries',
    sa.Column('period_id', sa.Integer(), nullable=False),
    sa.Column('msp_net_cents', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('msp_residue_micro_cents', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('members_net_cents', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['period_id'], ['periods.id'], name=op.f('fk_period_summaries_period_id_periods')),
    sa.PrimaryKeyConstraint('period_id', name=op.f('pk_period_summaries'))
    )
    op.create_table('token_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.String(length=16), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('operation_id', sa.String(length=36), nullable=False),
    sa.Column('event', sa.String(length=8), nullable=False),
    sa.Column('tokens', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cents', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('occurred_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('royalty_micro_cents', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('paid_from_deposit_cents', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('period_id', sa.Integer(), nullable=True),
    sa.Column('created_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('tokens > 0 AND cents >= 0 AND royalty_micro_cents >= 0 AND paid_from_deposit_cents >= 0',
                       name=op.f('ck_token_notices_amounts_not_negative')),
    sa.ForeignKeyConstraint(['member_id'], ['members.member_id'], name=op.f('fk_token_notices_member_id_members')),
    sa.ForeignKeyConstraint(['period_id'], ['periods.id'], name=op.f('fk_token_notices_period_id_periods')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_token_notices')),
    sa.UniqueConstraint('member_id', 'message_id', name='uq_token_notices_member_message'),
    sa.UniqueConstraint('operation_id', name=op.f('uq_token_notices_operation_id'))
    )
    with op.batch_alter_table('token_notices', schema=None) as batch_op:
        batch_op.create_index('ix_token_notices_member_period', ['member_id', 'period_id'], unique=False)

    op.create_table('settled_movements',
    sa.Column('movement_id', sa.Integer(), nullable=False),
    sa.Column('period_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['movement_id'], ['movements.id'], name=op.f('fk_settled_movements_movement_id_movements')),
    sa.ForeignKeyConstraint(['period_id'], ['periods.id'], name=op.f('fk_settled_movements_period_id_periods')),
    sa.PrimaryKeyConstraint('movement_id', name=op.f('pk_settled_movements'))
    )
    with op.batch_alter_table('settled_movements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_settled_movements_period_id'), ['period_id'], unique=False)

    with op.batch_alter_table('periods', schema=None) as batch_op:
        batch_op.create_index('uq_periods_one_open', ['status'], unique=True, sqlite_where=sa.text("status = 'open'"),
                              postgresql_where=sa.text("status = 'open'"))



def downgrade() -> None:
    with op.batch_alter_table('periods', schema=None) as batch_op:
        batch_op.drop_index('uq_periods_one_open')

    with op.batch_alter_table('settled_movements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_settled_movements_period_id'))

    op.drop_table('settled_movements')
    with op.batch_alter_table('token_notices', schema=None) as batch_op:
        batch_op.drop_index('ix_token_notices_member_period')

    op.drop_table('token_notices')
    op.drop_table('period_summaries')
    with op.batch_alter_table('payout_instructions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payout_instructions_member_id'))

    op.drop_table('payout_instructions')
