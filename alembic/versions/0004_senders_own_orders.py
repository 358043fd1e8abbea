"""senders own their orders

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

revision = '0004'
# TODO(merge): '0003' once the lead's migration 0003 is in this branch.
down_revision = '0002'
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


def downgrade() -> None:
    # Fails if two senders share an external id or a key: such orders cannot be told apart
    # without a sender.
    with op.batch_alter_table('orders') as batch:
        batch.drop_constraint('uq_orders_sender_idempotency_key', type_='unique')
        batch.drop_constraint('uq_orders_external_id_sender', type_='unique')
        batch.create_unique_constraint('uq_orders_external_id', ['external_id'])
        batch.create_unique_constraint('uq_orders_idempotency_key', ['idempotency_key'])
        batch.drop_column('sender')
