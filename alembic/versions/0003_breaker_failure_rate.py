"""breakers decide on a window's failure rate, with several probes in half-open

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 14:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

COUNTERS = (
    'calls', 'failures', 'retry_failures', 'probes', 'probe_successes', 'probe_failures', 'held'
)


def upgrade() -> None:
    op.add_column('breakers', sa.Column('window_started_at', sa.DateTime(timezone=True), nullable=True))
    for name in COUNTERS:
        op.add_column('breakers', sa.Column(name, sa.Integer(), server_default='0', nullable=False))
    op.drop_column('breakers', 'consecutive_failures')


def downgrade() -> None:
    op.add_column('breakers', sa.Column('consecutive_failures', sa.Integer(), server_default='0', nullable=False))
    for name in reversed(COUNTERS):
        op.drop_column('breakers', name)
    op.drop_column('breakers', 'window_started_at')
