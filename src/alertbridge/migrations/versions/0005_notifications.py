"""notifications: what a case's notifiers and review writer keep, and each notifier channel's storm window

Revision ID: 0005_notifications
Revises: 0004_case_members
"""
from alembic import op
import sqlalchemy as sa

revision = '0005_notifications'
down_revision = '0004_case_members'

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('case_notices',
    sa.Column('case_id', Id, nullable=False),
    sa.Column('target', sa.String(length=200), nullable=False),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('sending', sa.String(length=300), nullable=True),
    sa.Column('sending_since', sa.Float(), nullable=True),
    sa.Column('held_in', sa.String(length=300), nullable=True),
    sa.Column('held_case', sa.JSON(), nullable=True),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('case_id', 'target')
    )
    op.create_index('ix_case_notices_held', 'case_notices', ['held_in'], unique=False)
    op.create_table('notice_channels',
    sa.Column('channel', sa.String(length=300), nullable=False),
    sa.Column('window_start', sa.Float(), nullable=False),
    sa.Column('opened', sa.Integer(), nullable=False),
    sa.Column('storm', sa.Boolean(), nullable=False),
    sa.Column('digest_due', sa.Float(), nullable=True),
    sa.Column('sending', sa.String(length=300), nullable=True),
    sa.Column('sending_since', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('channel')
    )


def downgrade() -> None:
    op.drop_table('notice_channels')
    op.drop_index('ix_case_notices_held', table_name='case_notices')
    op.drop_table('case_notices')
