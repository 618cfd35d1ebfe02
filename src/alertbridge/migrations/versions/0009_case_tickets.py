"""case tickets: a ticket per further sink of a case's route, and job lanes so each sink's jobs run on their own

Revision ID: 0009_case_tickets
Revises: 0008_writeback
"""
from alembic import op
import sqlalchemy as sa

revision = '0009_case_tickets'
down_revision = '0008_writeback'

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('case_tickets',
    sa.Column('case_id', Id, nullable=False),
    sa.Column('sink', sa.String(length=100), nullable=False),
    sa.Column('reference', sa.String(length=200)),
    sa.Column('create_claimed_at', sa.Float()),
    sa.Column('render_revision', sa.String(length=40)),
    sa.Column('ticket_key', sa.String(length=100)),
    sa.Column('ticket_url', sa.Text()),
    sa.Column('ticket_status', sa.String(length=100)),
    sa.Column('hub_status', sa.String(length=100)),
    sa.Column('alerts_commented', sa.Integer(), server_default='1', nullable=False),
    sa.Column('last_comment_text', sa.Text()),
    sa.PrimaryKeyConstraint('case_id', 'sink')
    )
    op.create_index('ix_case_tickets_ticket', 'case_tickets', ['sink', 'ticket_key'])
    op.add_column('jobs', sa.Column('lane', sa.String(length=100)))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('lane')
    op.drop_index('ix_case_tickets_ticket', table_name='case_tickets')
    op.drop_table('case_tickets')
