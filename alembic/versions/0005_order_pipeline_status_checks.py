"""each order records its pipeline; statuses checked by the schema

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:40:00.000000

An order keeps the ordered step names it was accepted on (and their version, a hash of them):
a change of the registry (a step added or switched on) never strands orders in flight, which
finish on their own pipeline. Orders stored before this ran the three steps of that time.

The statuses of orders, steps, failures and breakers get CHECK constraints with the values of
the enums in hub/core/statuses.py and hub/core/breaker.py.
"""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# The pipeline of every order accepted before this migration (frozen here: the registry moves on).
EARLIER_STEPS = ['inventory', 'fulfillment', 'invoice']
EARLIER_VERSION = hashlib.sha256(','.join(EARLIER_STEPS).encode()).hexdigest()[:12]

CHECKS = {
    'orders': ('status', 'status', ('received', 'processing', 'completed', 'failed')),
    'step_outcomes': ('status', 'status', ('pending', 'running', 'error', 'succeeded', 'failed')),
    'failures': ('state', 'state', ('open', 'replayed', 'discarded')),
    'breakers': ('state', 'state', ('closed', 'open', 'half_open')),
}
FAILURE_KINDS = ('permanent', 'exhausted', 'poison', 'crashed', 'stalled')


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    json_type = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
    # NOT NULL with a constant default is instant on PostgreSQL; the default serves the rows
    # already there only, so it is dropped at once.
    with op.batch_alter_table('orders') as batch:
        batch.add_column(sa.Column(
            'pipeline', json_type, nullable=False,
            server_default=sa.text(f"'{json.dumps(EARLIER_STEPS)}'"),
        ))
        batch.add_column(sa.Column(
            'pipeline_version', sa.String(length=16), nullable=False,
            server_default=EARLIER_VERSION,
        ))
    with op.batch_alter_table('orders') as batch:
        batch.alter_column('pipeline', server_default=None)
        batch.alter_column('pipeline_version', server_default=None)
    for table, (name, column, values) in CHECKS.items():
        with op.batch_alter_table(table) as batch:
            batch.create_check_constraint(op.f(f'ck_{table}_{name}'), _in(column, values))
    with op.batch_alter_table('failures') as batch:
        batch.create_check_constraint(op.f('ck_failures_error_kind'), _in('error_kind', FAILURE_KINDS))


def downgrade() -> None:
    with op.batch_alter_table('failures') as batch:
        batch.drop_constraint(op.f('ck_failures_error_kind'), type_='check')
    for table, (name, _column, _values) in CHECKS.items():
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f'ck_{table}_{name}'), type_='check')
    with op.batch_alter_table('orders') as batch:
        batch.drop_column('pipeline_version')
        batch.drop_column('pipeline')
