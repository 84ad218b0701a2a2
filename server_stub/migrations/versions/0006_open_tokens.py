"""open tokens, vendor side: purchases of open tokens and gift certificates, the open part of orders

Revision ID: 0006_open_tokens
Revises: 0005_mall_membership
Create Date: 2026-12-02 18:10:00

The tokens themselves live at the MSP (docs/mall.md "Open tokens"); a vendor
keeps what its users bought for the network (open_token_purchases) and, per
order paid partly in open tokens, the MSP's authorization (order_open_payments).
"""
from alembic import op
import sqlalchemy as sa

from server_stub.models.base import UTCDateTime

revision = '0006_open_tokens'
down_revision = '0005_mall_membership'
branch_labels = None
depends_on = None

Amount = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('open_token_purchases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('operation_id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('issuer', sa.String(length=50), nullable=True),
    sa.Column('tokens', Amount, nullable=False),
    sa.Column('price_cents', Amount, nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('invoice_number', sa.String(length=32), nullable=True),
    sa.Column('card_brand', sa.String(length=16), nullable=True),
    sa.Column('card_last4', sa.String(length=4), nullable=True),
    sa.Column('processor_ref', sa.String(length=64), nullable=True),
    sa.Column('decline_code', sa.String(length=32), nullable=True),
    sa.Column('recipient_username', sa.String(length=64), nullable=True),
    sa.Column('recipient_full_name', sa.String(length=100), nullable=True),
    sa.Column('gift_expires_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('gift_code_sha256', sa.String(length=64), nullable=True),
    sa.Column('give_operation_id', sa.String(length=36), nullable=True),
    sa.Column('give_status', sa.String(length=16), nullable=False),
    sa.Column('give_reason', sa.String(length=300), nullable=False),
    sa.Column('answer_json', sa.Text(), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('issued_at', UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_open_token_purchases_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_open_token_purchases')),
    sa.UniqueConstraint('operation_id', name=op.f('uq_open_token_purchases_operation_id')),
    sa.UniqueConstraint('invoice_number', name=op.f('uq_open_token_purchases_invoice_number')),
    sa.UniqueConstraint('give_operation_id', name=op.f('uq_open_token_purchases_give_operation_id'))
    )
    with op.batch_alter_table('token_policy') as batch:
        # the vendor's expiry of the gift certificates it sells (days; GET /v1/open-token-offers)
        batch.add_column(sa.Column('gift_certificate_days', sa.Integer(), nullable=False, server_default='365'))
    op.create_index(op.f('ix_open_token_purchases_user_id'), 'open_token_purchases', ['user_id'], unique=False)
    op.create_table('order_open_payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('operation_id', sa.String(length=36), nullable=False),
    sa.Column('units', Amount, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('request_json', sa.Text(), nullable=False),
    sa.Column('answer_json', sa.Text(), nullable=False),
    sa.Column('hold_expires_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['store_orders.id'], name=op.f('fk_order_open_payments_order_id_store_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_open_payments')),
    sa.UniqueConstraint('operation_id', name=op.f('uq_order_open_payments_operation_id')),
    sa.UniqueConstraint('order_id', name=op.f('uq_order_open_payments_order_id'))
    )
    with op.batch_alter_table('store_orders') as batch:
        batch.add_column(sa.Column('payment', sa.String(length=8), nullable=False, server_default='closed'))
    with op.batch_alter_table('store_licenses') as batch:
        batch.add_column(sa.Column('cancelled_at', UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('store_licenses') as batch:
        batch.drop_column('cancelled_at')
    with op.batch_alter_table('store_orders') as batch:
        batch.drop_column('payment')
    op.drop_table('order_open_payments')
    with op.batch_alter_table('token_policy') as batch:
        batch.drop_column('gift_certificate_days')
    op.drop_index(op.f('ix_open_token_purchases_user_id'), table_name='open_token_purchases')
    op.drop_table('open_token_purchases')
