"""the MSP: members, invitations, groups, acceptances, the directory version,
customer, token, movement and fee records, the books, settlement periods and statements

Revision ID: m0001
Revises:
Create Date: 2026-12-02 00:19:16

The directory starts at version 1 (one row, bumped by every change to it).
"""
from datetime import datetime, UTC

from alembic import op
import sqlalchemy as sa
import server_stub.models.base


revision = 'm0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('directory_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('changed_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_directory_state_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_directory_state'))
    )
    op.bulk_insert(sa.table('directory_state', sa.column('id', sa.Integer()), sa.column('version', sa.Integer()),
                            sa.column('changed_at', server_stub.models.base.UTCDateTime(timezone=True))),
                   [{'id': 1, 'version': 1, 'changed_at': datetime.now(UTC)}])
    op.create_table('groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('created_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_groups')),
    sa.UniqueConstraint('name', name=op.f('uq_groups_name'))
    )
    op.create_table('members',
    sa.Column('member_id', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('base_url', sa.String(length=300), nullable=False),
    sa.Column('network_key', sa.String(length=64), nullable=False),
    sa.Column('code_keys', sa.JSON(), nullable=False),
    sa.Column('token_name', sa.String(length=50), nullable=False),
    sa.Column('token_value_cents', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('blocked_reason', sa.String(length=300), nullable=True),
    sa.Column('parent_member_id', sa.String(length=16), nullable=True),
    sa.Column('accepts', sa.String(length=16), nullable=False),
    sa.Column('service_charge_bp', sa.Integer(), nullable=False),
    sa.Column('royalty_bp', sa.Integer(), nullable=False),
    sa.Column('fixed_fee_cents', sa.Integer(), nullable=False),
    sa.Column('royalty_mode', sa.String(length=16), nullable=False),
    sa.Column('joined_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('service_charge_bp >= 0 AND royalty_bp >= 0 AND fixed_fee_cents >= 0', name=op.f('ck_members_fees_not_negative')),
    sa.CheckConstraint('token_value_cents > 0', name=op.f('ck_members_positive_token_value')),
    sa.ForeignKeyConstraint(['parent_member_id'], ['members.member_id'], name=op.f('fk_members_parent_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_members')),
    sa.UniqueConstraint('network_key', name=op.f('uq_members_network_key'))
    )
    op.create_index(op.f('ix_members_parent_member_id'), 'members', ['parent_member_id'], unique=False)
    op.create_table('periods',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('starts_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('closed_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_periods'))
    )
    op.create_table('acceptances',
    sa.Column('member_id', sa.String(length=16), nullable=False),
    sa.Column('accepted_member_id', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['accepted_member_id'], ['members.member_id'], name=op.f('fk_acceptances_accepted_member_id_members')),
    sa.ForeignKeyConstraint(['member_id'], ['members.member_id'], name=op.f('fk_acceptances_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', 'accepted_member_id', name=op.f('pk_acceptances'))
    )
    op.create_table('customer_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('home_member_id', sa.String(length=16), nullable=False),
    sa.Column('home_user_id', sa.String(length=64), nullable=False),
    sa.Column('full_name', sa.String(length=100), nullable=False),
    sa.Column('created_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['home_member_id'], ['members.member_id'], name=op.f('fk_customer_records_home_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_records')),
    sa.UniqueConstraint('home_member_id', 'home_user_id', name='uq_customer_records_home')
    )
    op.create_table('fee_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.String(length=16), nullable=False),
    sa.Column('operation_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('amount_micro_cents', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('period_id', sa.Integer(), nullable=True),
    sa.Column('created_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.member_id'], name=op.f('fk_fee_records_member_id_members')),
    sa.ForeignKeyConstraint(['period_id'], ['periods.id'], name=op.f('fk_fee_records_period_id_periods')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fee_records')),
    sa.UniqueConstraint('operation_id', 'member_id', 'kind', name='uq_fee_records_operation')
    )
    op.create_index('ix_fee_records_member_period', 'fee_records', ['member_id', 'period_id'], unique=False)
    op.create_index(op.f('ix_fee_records_operation_id'), 'fee_records', ['operation_id'], unique=False)
    op.create_table('group_members',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_group_members_group_id_groups')),
    sa.ForeignKeyConstraint(['member_id'], ['members.member_id'], name=op.f('fk_group_members_member_id_members')),
    sa.PrimaryKeyConstraint('group_id', 'member_id', name=op.f('pk_group_members'))
    )
    op.create_index(op.f('ix_group_members_member_id'), 'group_members', ['member_id'], unique=False)
    op.create_table('invitations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code_digest', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('created_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('used_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('member_id', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.member_id'], name=op.f('fk_invitations_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invitations')),
    sa.UniqueConstraint('code_digest', name=op.f('uq_invitations_code_digest'))
    )
    op.create_table('mall_accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=100), nullable=False),
    sa.Column('asset', sa.String(length=24), nullable=False),
    sa.Column('owner_member_id', sa.String(length=16), nullable=True),
    sa.Column('negative_allowed', sa.Boolean(), nullable=False),
    sa.Column('balance', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('negative_allowed OR balance >= 0', name=op.f('ck_mall_accounts_not_negative')),
    sa.ForeignKeyConstraint(['owner_member_id'], ['members.member_id'], name=op.f('fk_mall_accounts_owner_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mall_accounts')),
    sa.UniqueConstraint('code', name=op.f('uq_mall_accounts_code'))
    )
    op.create_index(op.f('ix_mall_accounts_owner_member_id'), 'mall_accounts', ['owner_member_id'], unique=False)
    op.create_table('statements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('period_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.String(length=16), nullable=False),
    sa.Column('owed_cents', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('owing_cents', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('fees_cents', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rounding_gain_cents', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('net_cents', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('residue_micro_cents', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.member_id'], name=op.f('fk_statements_member_id_members')),
    sa.ForeignKeyConstraint(['period_id'], ['periods.id'], name=op.f('fk_statements_period_id_periods')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_statements')),
    sa.UniqueConstraint('period_id', 'member_id', name='uq_statements_period_member')
    )
    op.create_index(op.f('ix_statements_member_id'), 'statements', ['member_id'], unique=False)
    op.create_table('token_records',
    sa.Column('member_id', sa.String(length=16), nullable=False),
    sa.Column('issued', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('spent', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('exchanged_in', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('exchanged_out', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('expired', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('updated_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('issued >= 0 AND spent >= 0 AND exchanged_in >= 0 AND exchanged_out >= 0 AND expired >= 0',
                       name=op.f('ck_token_records_counts_not_negative')),
    sa.ForeignKeyConstraint(['member_id'], ['members.member_id'], name=op.f('fk_token_records_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_token_records'))
    )
    op.create_table('mall_transfers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('from_account_id', sa.Integer(), nullable=False),
    sa.Column('to_account_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('asset', sa.String(length=24), nullable=False),
    sa.Column('operation_id', sa.String(length=36), nullable=True),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('created_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_mall_transfers_positive_amount')),
    sa.CheckConstraint('from_account_id <> to_account_id', name=op.f('ck_mall_transfers_distinct_accounts')),
    sa.ForeignKeyConstraint(['from_account_id'], ['mall_accounts.id'], name=op.f('fk_mall_transfers_from_account_id_mall_accounts')),
    sa.ForeignKeyConstraint(['to_account_id'], ['mall_accounts.id'], name=op.f('fk_mall_transfers_to_account_id_mall_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mall_transfers'))
    )
    op.create_index('ix_mall_transfers_from', 'mall_transfers', ['from_account_id', 'id'], unique=False)
    op.create_index(op.f('ix_mall_transfers_operation_id'), 'mall_transfers', ['operation_id'], unique=False)
    op.create_index('ix_mall_transfers_to', 'mall_transfers', ['to_account_id', 'id'], unique=False)
    op.create_table('movements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('operation_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('from_member', sa.String(length=16), nullable=False),
    sa.Column('to_member', sa.String(length=16), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('tokens_from', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tokens_to', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('value_cents', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=True),
    sa.Column('created_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', server_stub.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint('tokens_from >= 0 AND tokens_to >= 0 AND value_cents >= 0', name=op.f('ck_movements_amounts_not_negative')),
    sa.ForeignKeyConstraint(['customer_id'], ['customer_records.id'], name=op.f('fk_movements_customer_id_customer_records')),
    sa.ForeignKeyConstraint(['from_member'], ['members.member_id'], name=op.f('fk_movements_from_member_members')),
    sa.ForeignKeyConstraint(['to_member'], ['members.member_id'], name=op.f('fk_movements_to_member_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_movements')),
    sa.UniqueConstraint('operation_id', name=op.f('uq_movements_operation_id'))
    )
    op.create_index(op.f('ix_movements_customer_id'), 'movements', ['customer_id'], unique=False)
    op.create_index(op.f('ix_movements_from_member'), 'movements', ['from_member'], unique=False)
    op.create_index('ix_movements_status_created', 'movements', ['status', 'created_at'], unique=False)
    op.create_index(op.f('ix_movements_to_member'), 'movements', ['to_member'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_movements_to_member'), table_name='movements')
    op.drop_index('ix_movements_status_created', table_name='movements')
    op.drop_index(op.f('ix_movements_from_member'), table_name='movements')
    op.drop_index(op.f('ix_movements_customer_id'), table_name='movements')
    op.drop_table('movements')
    op.drop_index('ix_mall_transfers_to', table_name='mall_transfers')
    op.drop_index(op.f('ix_mall_transfers_operation_id'), table_name='mall_transfers')
    op.drop_index('ix_mall_transfers_from', table_name='mall_transfers')
    op.drop_table('mall_transfers')
    op.drop_table('token_records')
    op.drop_index(op.f('ix_statements_member_id'), table_name='statements')
    op.drop_table('statements')
    op.drop_index(op.f('ix_mall_accounts_owner_member_id'), table_name='mall_accounts')
    op.drop_table('mall_accounts')
    op.drop_table('invitations')
    op.drop_index(op.f('ix_group_members_member_id'), table_name='group_members')
    op.drop_table('group_members')
    op.drop_index(op.f('ix_fee_records_operation_id'), table_name='fee_records')
    op.drop_index('ix_fee_records_member_period', table_name='fee_records')
    op.drop_table('fee_records')
    op.drop_table('customer_records')
    op.drop_table('acceptances')
    op.drop_table('periods')
    op.drop_index(op.f('ix_members_parent_member_id'), table_name='members')
    op.drop_table('members')
    op.drop_table('groups')
    op.drop_table('directory_state')
