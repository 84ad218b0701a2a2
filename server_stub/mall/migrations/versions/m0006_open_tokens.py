"""Open tokens (issue 12, FIG 18-20): lots, gift certificates, brands, the product list, open payments, MSP sessions

Revision ID: m0006
Revises: m0005
Create Date: 2026-12-02 10:59:34.613467
"""
from alembic import op
import sqlalchemy as sa
import server_stub.models.base


revision = 'm0006'
down_revision = 'm0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('msp_assertion_uses',
    sa.Column('jti', sa.String(length=64), nullable=False),
    sa.Column('issuer', sa.String(length=16), nullable=False),
    sa.Column('expires_at', server_stub.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('jti', name=op.f('pk_msp_assertion_uses'))
    )
    op.create_table('msp_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_value_cents', sa.Integer(), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_msp_settings_single_row')),
    sa.CheckConstraint('unit_value_cents > 0', name=op.f('ck_msp_settings_positive_unit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_msp_settings'))
    )
    op.create_table('brands',
    sa.Column('brand_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('member_id', sa.String(length=16), nullable=False),
    sa.Column('discount_bp', sa.Integer(), nullable=False),
    sa.Column('free_cap_units', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', server_stub.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('discount_bp >= 0 AND discount_bp <= 10000 AND free_cap_units >= 0', name=op.f('ck_brands_terms_in_range')),
    sa.ForeignKeyConstraint(['member_id'], ['members.member_id'], name=op.f('fk_brands_member_id_members')),
    sa.PrimaryKeyConstraint('brand_id', name=op.f('pk_brands'))
    )
    with op.batch_alter_table('brands', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_brands_member_id'), ['member_id'], unique=False)

    op.create_table('brand_products',
    sa.Column('member_id', sa.String(length=16), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('brand_id', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['brand_id'], ['brands.brand_id'], name=op.f('fk_brand_products_brand_id_brands')),
    sa.ForeignKeyConstraint(['member_id'], ['members.member_id'], name=op.f('fk_brand_products_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', 'product_id', name=op.f('pk_brand_products'))
    )
    with op.batch_alter_table('brand_products', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_brand_products_brand_id'), ['brand_id'], unique=False)

    op.create_table('gift_certificates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('operation_id', sa.String(length=36), nullable=False),
    sa.Column('face_units', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('buyer_customer_id', sa.Integer(), nullable=False),
    sa.Column('recipient_customer_id', sa.Integer(), nullable=True),
    sa.Column('code_sha256', sa.String(length=64), nullable=True),
    sa.Column('seller_member_id', sa.String(length=16), nullable=False),
    sa.Column('expires_at', server_stub.db_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=True),
    sa.Column('created_at', server_stub.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('face_units > 0', name=op.f('ck_gift_certificates_positive_face')),
    sa.ForeignKeyConstraint(['buyer_customer_id'], ['customer_records.id'],
        name=op.f('fk_gift_certificates_buyer_customer_id_customer_records')),
    sa.ForeignKeyConstraint(['recipient_customer_id'], ['customer_records.id'],
        name=op.f('fk_gift_certificates_recipient_customer_id_customer_records')),
    sa.ForeignKeyConstraint(['seller_member_id'], ['members.member_id'], name=op.f('fk_gift_certificates_seller_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gift_certificates')),
    sa.UniqueConstraint('code_sha256', name=op.f('uq_gift_certificates_code_sha256')),
    sa.UniqueConstraint('lot_id', name=op.f('uq_gift_certificates_lot_id')),
    sa.UniqueConstraint('operation_id', name=op.f('uq_gift_certificates_operation_id'))
    )
    op.create_table('msp_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('expires_at', server_stub.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', server_stub.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer_records.id'], name=op.f('fk_msp_sessions_customer_id_customer_records')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_msp_sessions')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_msp_sessions_token_sha256'))
    )
    with op.batch_alter_table('msp_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_msp_sessions_customer_id'), ['customer_id'], unique=False)

    op.create_table('open_payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('operation_id', sa.String(length=36), nullable=False),
    sa.Column('member_id', sa.String(length=16), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('units', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=True),
    sa.Column('hold_expires_at', server_stub.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('plan', sa.JSON(), nullable=False),
    sa.Column('created_at', server_stub.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', server_stub.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('units > 0', name=op.f('ck_open_payments_positive_units')),
    sa.ForeignKeyConstraint(['customer_id'], ['customer_records.id'], name=op.f('fk_open_payments_customer_id_customer_records')),
    sa.ForeignKeyConstraint(['member_id'], ['members.member_id'], name=op.f('fk_open_payments_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_open_payments')),
    sa.UniqueConstraint('operation_id', name=op.f('uq_open_payments_operation_id'))
    )
    with op.batch_alter_table('open_payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_open_payments_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_open_payments_member_id'), ['member_id'], unique=False)
        batch_op.create_index('ix_open_payments_status_hold', ['status', 'hold_expires_at'], unique=False)

    op.create_table('redeem_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('at', server_stub.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer_records.id'], name=op.f('fk_redeem_failures_customer_id_customer_records')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_redeem_failures'))
    )
    with op.batch_alter_table('redeem_failures', schema=None) as batch_op:
        batch_op.create_index('ix_redeem_failures_customer_at', ['customer_id', 'at'], unique=False)

    op.create_table('open_lots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('asset', sa.String(length=100), nullable=False),
    sa.Column('issuer', sa.String(length=50), nullable=True),
    sa.Column('seller_member_id', sa.String(length=16), nullable=False),
    sa.Column('expires_at', server_stub.db_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('paid_bp', sa.Integer(), nullable=False),
    sa.Column('gift_certificate_id', sa.Integer(), nullable=True),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('origin', sa.String(length=100), nullable=False),
    sa.Column('created_at', server_stub.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('paid_bp >= 0 AND paid_bp <= 10000', name=op.f('ck_open_lots_paid_bp_in_range')),
    sa.ForeignKeyConstraint(['account_id'], ['mall_accounts.id'], name=op.f('fk_open_lots_account_id_mall_accounts')),
    sa.ForeignKeyConstraint(['customer_id'], ['customer_records.id'], name=op.f('fk_open_lots_customer_id_customer_records')),
    sa.ForeignKeyConstraint(['gift_certificate_id'], ['gift_certificates.id'],
        name=op.f('fk_open_lots_gift_certificate_id_gift_certificates')),
    sa.ForeignKeyConstraint(['seller_member_id'], ['members.member_id'], name=op.f('fk_open_lots_seller_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_open_lots')),
    sa.UniqueConstraint('account_id', name=op.f('uq_open_lots_account_id')),
    sa.UniqueConstraint('origin', name=op.f('uq_open_lots_origin'))
    )
    with op.batch_alter_table('open_lots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_open_lots_customer_id'), ['customer_id'], unique=False)

    op.create_table('open_payment_portions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=False),
    sa.Column('tokens', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.CheckConstraint('tokens > 0', name=op.f('ck_open_payment_portions_positive_tokens')),
    sa.ForeignKeyConstraint(['lot_id'], ['open_lots.id'], name=op.f('fk_open_payment_portions_lot_id_open_lots')),
    sa.ForeignKeyConstraint(['payment_id'], ['open_payments.id'], name=op.f('fk_open_payment_portions_payment_id_open_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_open_payment_portions'))
    )
    with op.batch_alter_table('open_payment_portions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_open_payment_portions_lot_id'), ['lot_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_open_payment_portions_payment_id'), ['payment_id'], unique=False)

    op.create_table('open_lot_moves',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=False),
    sa.Column('from_customer_id', sa.Integer(), nullable=False),
    sa.Column('to_customer_id', sa.Integer(), nullable=False),
    sa.Column('tokens', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('why', sa.String(length=16), nullable=False),
    sa.Column('at', server_stub.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['from_customer_id'], ['customer_records.id'],
        name=op.f('fk_open_lot_moves_from_customer_id_customer_records')),
    sa.ForeignKeyConstraint(['lot_id'], ['open_lots.id'], name=op.f('fk_open_lot_moves_lot_id_open_lots')),
    sa.ForeignKeyConstraint(['to_customer_id'], ['customer_records.id'],
        name=op.f('fk_open_lot_moves_to_customer_id_customer_records')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_open_lot_moves'))
    )
    with op.batch_alter_table('open_lot_moves', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_open_lot_moves_from_customer_id'), ['from_customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_open_lot_moves_lot_id'), ['lot_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_open_lot_moves_to_customer_id'), ['to_customer_id'], unique=False)

    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('discount_bp', sa.Integer(), server_default='0', nullable=False))

    with op.batch_alter_table('mall_accounts', schema=None) as batch_op:
        batch_op.alter_column('asset',
               existing_type=sa.VARCHAR(length=24),
               type_=sa.String(length=100),
               existing_nullable=False)

    with op.batch_alter_table('mall_transfers', schema=None) as batch_op:
        batch_op.alter_column('asset',
               existing_type=sa.VARCHAR(length=24),
               type_=sa.String(length=100),
               existing_nullable=False)

    with op.batch_alter_table('movements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('value_micro_cents', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))

    op.execute("INSERT INTO msp_settings (id, unit_value_cents) VALUES (1, 1)")


def downgrade() -> None:
    with op.batch_alter_table('movements', schema=None) as batch_op:
        batch_op.drop_column('value_micro_cents')

    with op.batch_alter_table('mall_transfers', schema=None) as batch_op:
        batch_op.alter_column('asset',
               existing_type=sa.String(length=100),
               type_=sa.VARCHAR(length=24),
               existing_nullable=False)

    with op.batch_alter_table('mall_accounts', schema=None) as batch_op:
        batch_op.alter_column('asset',
               existing_type=sa.String(length=100),
               type_=sa.VARCHAR(length=24),
               existing_nullable=False)

    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.drop_column('discount_bp')

    with op.batch_alter_table('open_payment_portions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_open_payment_portions_payment_id'))
        batch_op.drop_index(batch_op.f('ix_open_payment_portions_lot_id'))

    op.drop_table('open_payment_portions')
    with op.batch_alter_table('open_lot_moves', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_open_lot_moves_to_customer_id'))
        batch_op.drop_index(batch_op.f('ix_open_lot_moves_lot_id'))
        batch_op.drop_index(batch_op.f('ix_open_lot_moves_from_customer_id'))

    op.drop_table('open_lot_moves')
    with op.batch_alter_table('open_lots', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_open_lots_customer_id'))

    op.drop_table('open_lots')
    with op.batch_alter_table('redeem_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_redeem_failures_customer_at')

    op.drop_table('redeem_failures')
    with op.batch_alter_table('open_payments', schema=None) as batch_op:
        batch_op.drop_index('ix_open_payments_status_hold')
        batch_op.drop_index(batch_op.f('ix_open_payments_member_id'))
        batch_op.drop_index(batch_op.f('ix_open_payments_customer_id'))

    op.drop_table('open_payments')
    with op.batch_alter_table('msp_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_msp_sessions_customer_id'))

    op.drop_table('msp_sessions')
    op.drop_table('gift_certificates')
    with op.batch_alter_table('brand_products', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_brand_products_brand_id'))

    op.drop_table('brand_products')
    with op.batch_alter_table('brands', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_brands_member_id'))

    op.drop_table('brands')
    op.drop_table('msp_settings')
    op.drop_table('msp_assertion_uses')
