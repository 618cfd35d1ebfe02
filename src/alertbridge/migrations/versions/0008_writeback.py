"""writeback: sync_changes, the changes the hub made and saw, for the echo guard and field ownership

Revision ID: 0008_writeback
Revises: 0007_sink_rates
"""
from alembic import op
import sqlalchemy as sa

revision = '0008_writeback'
down_revision = '0007_sink_rates'

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('sync_changes',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('case_id', Id, nullable=False),
    sa.Column('system', sa.String(length=100), nullable=False),
    sa.Column('record', sa.String(length=300), nullable=False),
    sa.Column('field', sa.String(length=20), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('change_id', sa.String(length=200)),
    sa.Column('by_hub', sa.Integer(), nullable=False),
    sa.Column('echoed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_sync_changes_record', 'sync_changes', ['system', 'record', 'field', 'id'])


def downgrade() -> None:
    op.drop_index('ix_sync_changes_record', table_name='sync_changes')
    op.drop_table('sync_changes')
