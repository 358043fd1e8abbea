"""senders own their orders; audit counts folded for cheap metrics

Revision ID: 0004
Revises: 0002 (until the lead's 0003 is merged: then 0003)
Create Date: 2026-12-01 09:00:00.000000

Every order gets the sender of the key it came with; external ids and Idempotency-Keys are
unique per sender. Orders stored before this have no recorded sender. They become:
- the only sender's, when api_keys knows exactly one sender (revoked keys count): the usual
  single-CRM hub, whose repeats and GETs keep working;
- '-anonymous' when there is no key at all (they came in with HUB_INTAKE_AUTH=false);
- '-legacy' otherwise (several senders): no key sees them; operators still do, and may assign
  them with UPDATE orders SET sender = '<sender>' WHERE sender = '-legacy' AND ...
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

ANONYMOUS_SENDER = '-anonymous'
LEGACY_SENDER = '-legacy'


def _owner_of_existing_orders() -> str:
    senders = [row[0] for row in op.get_bind().execute(sa.text('SELECT DISTINCT sender FROM api_keys'))]
    if not senders:
        return ANONYMOUS_SENDER
    return senders[0] if len(senders) == 1 else LEGACY_SENDER


def upgrade() -> None:
    _create_audit_counts()
    owner = _owner_of_existing_orders()
    # NOT NULL with a constant default is instant on PostgreSQL (no table rewrite); the default
    # only serves the rows already there, so it is dropped at once.
    with op.batch_alter_table('orders') as batch:
        batch.add_column(sa.Column('sender', sa.String(length=64), nullable=False, server_default=owner))
    with op.batch_alter_table('orders') as batch:
        batch.alter_column('sender', server_default=None)
        batch.drop_constraint('uq_orders_external_id', type_='unique')
        batch.drop_constraint('uq_orders_idempotency_key', type_='unique')
        batch.create_unique_constraint('uq_orders_external_id_sender', ['external_id', 'sender'])
        batch.create_unique_constraint('uq_orders_sender_idempotency_key', ['sender', 'idempotency_key'])


def _create_audit_counts() -> None:
    # What /metrics reads instead of the whole audit trail (hub.services.audit_rollup). Empty
    # here: the relay folds the existing trail on its first passes.
    op.create_table('audit_counts',
    sa.Column('event_type', sa.String(length=48), nullable=False),
    sa.Column('step', sa.String(length=32), nullable=False),
    sa.Column('n', sa.BigInteger(), nullable=False),
    sa.Column('timed', sa.BigInteger(), nullable=False),
    sa.Column('total_seconds', sa.Float(), nullable=False),
    sa.Column('buckets', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('event_type', 'step', name=op.f('pk_audit_counts'))
    )
    op.create_table('audit_fold',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('folded_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_fold'))
    )


def downgrade() -> None:
    op.drop_table('audit_fold')
    op.drop_table('audit_counts')
    # Fails if two senders share an external id or a key: such orders cannot be told apart
    # without a sender.
    with op.batch_alter_table('orders') as batch:
        batch.drop_constraint('uq_orders_sender_idempotency_key', type_='unique')
        batch.drop_constraint('uq_orders_external_id_sender', type_='unique')
        batch.create_unique_constraint('uq_orders_external_id', ['external_id'])
        batch.create_unique_constraint('uq_orders_idempotency_key', ['idempotency_key'])
        batch.drop_column('sender')
