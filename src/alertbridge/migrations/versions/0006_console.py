"""console: ticket transitions, check runs, report runs, poll health

Revision ID: 0006_console
Revises: 0005_notifications
"""
from alembic import op
import sqlalchemy as sa

revision = '0006_console'
down_revision = '0005_notifications'

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('ticket_transitions',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('case_id', Id, nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=100), nullable=False),
    sa.Column('category', sa.String(length=20)),
    sa.Column('by_hub', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_ticket_transitions_case', 'ticket_transitions', ['case_id', 'at'])
    op.create_table('check_runs',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('by', sa.String(length=200), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('report_runs',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('period_start', sa.Float(), nullable=False),
    sa.Column('period_end', sa.Float(), nullable=False),
    sa.Column('started_at', sa.Float(), nullable=False),
    sa.Column('outcome', sa.Text()),
    sa.PrimaryKeyConstraint('name', 'period_start')
    )
    op.create_table('poll_health',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('node', sa.String(length=200), nullable=False),
    sa.Column('last_poll_at', sa.Float(), nullable=False),
    sa.Column('last_ok_at', sa.Float()),
    sa.Column('last_error_at', sa.Float()),
    sa.Column('last_error', sa.Text()),
    sa.Column('failures', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('poll_health')
    op.drop_table('report_runs')
    op.drop_table('check_runs')
    op.drop_index('ix_ticket_transitions_case', table_name='ticket_transitions')
    op.drop_table('ticket_transitions')
