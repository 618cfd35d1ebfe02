"""instance identity and case references

Revision ID: 0003_instance_identity
Revises: 0002

Makes the database's instance id (once, here), and gives cases the reference their
ticket carries. Cases whose create was already sent keep the label older versions
wrote, `alertbridge-<case id>`, so they still find their tickets; cases that have
not sent theirs get the new `alertbridge-<instance>-<case id>` when they do.
"""
import time

import sqlalchemy as sa
from alembic import op

from alertbridge.store.instance import new_instance_id

revision = '0003_instance_identity'
down_revision = '0002'


def upgrade() -> None:
    instance = op.create_table(
        'instance',
        sa.Column('one', sa.Integer(), nullable=False),
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('one'),
    )
    op.bulk_insert(instance, [{'one': 1, 'id': new_instance_id(), 'created_at': time.time()}])
    with op.batch_alter_table('cases') as batch:
        batch.add_column(sa.Column('reference', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('render_revision', sa.String(length=40), nullable=True))
    op.execute(
        "UPDATE cases SET reference = 'alertbridge-' || CAST(id AS VARCHAR(20)) "
        "WHERE ticket_key IS NOT NULL OR create_claimed_at IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table('cases') as batch:
        batch.drop_column('render_revision')
        batch.drop_column('reference')
    op.drop_table('instance')
