"""per-system limits: calls in flight (slots with leases), rate, a 429's cooling, waiting steps

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'system_limits',
        sa.Column('system', sa.String(length=32), nullable=False),
        sa.Column('cooling_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('adaptive_rate', sa.Float(), nullable=True),
        sa.Column('adaptive_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('tokens', sa.Float(), nullable=True),
        sa.Column('tokens_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('call_seconds', sa.Float(), server_default='0.25', nullable=False),
        sa.Column('throttled', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('deferred', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('system', name=op.f('pk_system_limits')),
    )
    op.create_table(
        'system_slots',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('system', sa.String(length=32), nullable=False),
        sa.Column('holder', sa.String(length=80), nullable=False),
        sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_system_slots')),
    )
    op.create_index('ix_system_slots_system_expires_at', 'system_slots', ['system', 'expires_at'])
    op.create_table(
        'system_waiters',
        sa.Column('system', sa.String(length=32), nullable=False),
        sa.Column('holder', sa.String(length=80), nullable=False),
        sa.Column('since', sa.DateTime(timezone=True), nullable=False),
        sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('system', 'holder', name=op.f('pk_system_waiters')),
    )


def downgrade() -> None:
    op.drop_table('system_waiters')
    op.drop_index('ix_system_slots_system_expires_at', table_name='system_slots')
    op.drop_table('system_slots')
    op.drop_table('system_limits')
