"""token records count free tokens granted (circulation = issued + granted + exchanged in - spent - exchanged out - expired)

Revision ID: m0004
Revises: m0003
Create Date: 2026-12-02 05:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'm0004'
down_revision = 'm0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('token_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('granted', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                      server_default='0', nullable=False))
        batch_op.create_check_constraint(op.f('ck_token_records_granted_not_negative'), 'granted >= 0')


def downgrade() -> None:
    with op.batch_alter_table('token_records', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_token_records_granted_not_negative'), type_='check')
        batch_op.drop_column('granted')
