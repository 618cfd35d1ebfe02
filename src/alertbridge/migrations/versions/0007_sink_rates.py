"""sink_rates: each sink's next free send time, the call budget shared by every process

Revision ID: 0007_sink_rates
Revises: 0006_console
"""
from alembic import op
import sqlalchemy as sa

revision = '0007_sink_rates'
down_revision = '0006_console'


def upgrade() -> None:
    op.create_table('sink_rates',
    sa.Column('sink', sa.String(length=200), nullable=False),
    sa.Column('next_free', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('sink')
    )


def downgrade() -> None:
    op.drop_table('sink_rates')
