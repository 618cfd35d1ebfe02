"""case members: the hosts (or other children) of a case, one row each

Revision ID: 0004_case_members
Revises: 0003_instance_identity
"""
from alembic import op
import sqlalchemy as sa

revision = '0004_case_members'
down_revision = '0003_instance_identity'


def upgrade() -> None:
    op.create_table('case_members',
    sa.Column('case_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member', sa.String(length=300), nullable=False),
    sa.Column('host', sa.String(length=300), nullable=False),
    sa.Column('line', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('reported', sa.String(length=10), nullable=True),
    sa.Column('first_seen', sa.Float(), nullable=False),
    sa.Column('changed_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ),
    sa.PrimaryKeyConstraint('case_id', 'member')
    )


def downgrade() -> None:
    op.drop_table('case_members')
