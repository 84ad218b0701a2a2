"""mall network, vendor side: membership, linked accounts, exchange quotes and exchanges

Revision ID: 0005_mall_membership
Revises: 0004_rate_limits
Create Date: 2026-12-02 00:50:00

A vendor joins one mall (mall_membership, one row); users of other members
get a linked local account (mall_links); an exchange (FIG 15) is quoted
(exchange_quotes, rate locked) then confirmed (exchanges, holding the
user's tokens until the saga ends).
"""
from alembic import op
import sqlalchemy as sa

from server_stub.models.base import UTCDateTime, utcnow

revision = '0005_mall_membership'
down_revision = '0004_rate_limits'
branch_labels = None
depends_on = None

Amount = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('mall_membership',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.String(length=64), nullable=False),
    sa.Column('msp_url', sa.String(length=300), nullable=False),
    sa.Column('msp_key', sa.String(length=100), nullable=False),
    sa.Column('joined_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('directory_version', sa.Integer(), nullable=False),
    sa.Column('directory_json', sa.Text(), nullable=False),
    sa.Column('directory_fetched_at', UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mall_membership'))
    )
    op.create_table('mall_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('home_member_id', sa.String(length=64), nullable=False),
    sa.Column('home_user_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mall_links_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mall_links')),
    sa.UniqueConstraint('home_member_id', 'home_user_id', name=op.f('uq_mall_links_home_member_id')),
    sa.UniqueConstraint('user_id', name=op.f('uq_mall_links_user_id'))
    )
    op.create_table('exchange_quotes',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('to_member_id', sa.String(length=64), nullable=False),
    sa.Column('tokens_asked', Amount, nullable=False),
    sa.Column('tokens_from', Amount, nullable=False),
    sa.Column('tokens_to', Amount, nullable=False),
    sa.Column('value_from_cents', sa.Integer(), nullable=False),
    sa.Column('value_to_cents', sa.Integer(), nullable=False),
    sa.Column('value_cents', Amount, nullable=False),
    sa.Column('fees_cents', Amount, nullable=False),
    sa.Column('directory_version', sa.Integer(), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_exchange_quotes_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exchange_quotes'))
    )
    op.create_index(op.f('ix_exchange_quotes_user_id'), 'exchange_quotes', ['user_id'], unique=False)
    op.create_table('exchanges',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('quote_id', sa.String(length=36), nullable=False),
    sa.Column('to_member_id', sa.String(length=64), nullable=False),
    sa.Column('tokens_from', Amount, nullable=False),
    sa.Column('tokens_to', Amount, nullable=False),
    sa.Column('value_cents', Amount, nullable=False),
    sa.Column('hold_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['hold_id'], ['ledger_holds.id'], name=op.f('fk_exchanges_hold_id_ledger_holds')),
    sa.ForeignKeyConstraint(['quote_id'], ['exchange_quotes.id'], name=op.f('fk_exchanges_quote_id_exchange_quotes')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_exchanges_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exchanges')),
    sa.UniqueConstraint('quote_id', name=op.f('uq_exchanges_quote_id'))
    )
    op.create_index(op.f('ix_exchanges_user_id'), 'exchanges', ['user_id'], unique=False)
    op.create_table('mall_assertion_uses',
    sa.Column('jti', sa.String(length=64), nullable=False),
    sa.Column('issuer', sa.String(length=64), nullable=False),
    sa.Column('expires_at', UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('jti', name=op.f('pk_mall_assertion_uses'))
    )
    op.create_index(op.f('ix_mall_assertion_uses_expires_at'), 'mall_assertion_uses', ['expires_at'], unique=False)
    RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table('mall_outbox',
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
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mall_outbox')),
    sa.UniqueConstraint('message_id', name=op.f('uq_mall_outbox_message_id'))
    )
    op.create_index('ix_mall_outbox_due', 'mall_outbox', ['status', 'next_attempt_at'], unique=False)
    op.create_table('mall_inbox',
    sa.Column('id', RowId, nullable=False),
    sa.Column('sender', sa.String(length=64), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('body_digest', sa.String(length=64), nullable=False),
    sa.Column('answer_status', sa.Integer(), nullable=False),
    sa.Column('answer_body', sa.Text(), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mall_inbox')),
    sa.UniqueConstraint('sender', 'message_id', name='uq_mall_inbox_sender_message_id')
    )
    # tokens that left for other members, and tokens issued here for exchanges from them
    accounts = sa.table('ledger_accounts', sa.column('code', sa.String), sa.column('purpose', sa.String),
                        sa.column('currency', sa.String), sa.column('balance', sa.Integer),
                        sa.column('created_at', UTCDateTime(timezone=True)))
    now = utcnow()
    op.bulk_insert(accounts, [
        {"code": code, "purpose": "vendor", "currency": "token", "balance": 0, "created_at": now}
        for code in ("vendor:exchanged_out", "vendor:exchanged_in")
    ])


def downgrade() -> None:
    op.execute("DELETE FROM ledger_accounts WHERE code IN ('vendor:exchanged_out', 'vendor:exchanged_in')")
    op.drop_table('mall_inbox')
    op.drop_index('ix_mall_outbox_due', table_name='mall_outbox')
    op.drop_table('mall_outbox')
    op.drop_index(op.f('ix_mall_assertion_uses_expires_at'), table_name='mall_assertion_uses')
    op.drop_table('mall_assertion_uses')
    op.drop_index(op.f('ix_exchanges_user_id'), table_name='exchanges')
    op.drop_table('exchanges')
    op.drop_index(op.f('ix_exchange_quotes_user_id'), table_name='exchange_quotes')
    op.drop_table('exchange_quotes')
    op.drop_table('mall_links')
    op.drop_table('mall_membership')
