"""cancellation and compensation: order statuses cancelling/cancelled/closed, a compensation per step

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 13:00:00.000000

An order the sender or an operator cancels is ``cancelling`` while the steps it already did are
undone (in reverse order), then ``cancelled``; one an operator closes without undoing them is
``closed``. Each step row records its compensation beside the step: status, attempts, the id of
what undid it downstream (a credit note, say) and its last error. An outbox row is either a chain
of steps to run (``run``) or of compensations (``compensate``). A compensation that failed for
good is a failure of kind ``compensation``; a failure an operator resolved by cancelling the
order is ``cancelled``, one resolved by closing it ``closed``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

ORDER_BEFORE = ('received', 'processing', 'completed', 'failed')
ORDER_AFTER = (*ORDER_BEFORE, 'cancelling', 'cancelled', 'closed')
FAILURE_STATE_BEFORE = ('open', 'replayed', 'discarded')
FAILURE_STATE_AFTER = (*FAILURE_STATE_BEFORE, 'cancelled', 'closed')
KIND_BEFORE = ('permanent', 'exhausted', 'poison', 'crashed', 'stalled')
KIND_AFTER = (*KIND_BEFORE, 'compensation')
COMPENSATION_STATUSES = ('pending', 'running', 'error', 'succeeded', 'failed')
OUTBOX_KINDS = ('run', 'compensate')


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _recheck(table: str, name: str, column: str, values: tuple[str, ...]) -> None:
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(op.f(f'ck_{table}_{name}'), type_='check')
        batch.create_check_constraint(op.f(f'ck_{table}_{name}'), _in(column, values))


def upgrade() -> None:
    _recheck('orders', 'status', 'status', ORDER_AFTER)
    _recheck('failures', 'state', 'state', FAILURE_STATE_AFTER)
    _recheck('failures', 'error_kind', 'error_kind', KIND_AFTER)
    with op.batch_alter_table('orders') as batch:
        batch.add_column(sa.Column('cancel_reason', sa.Text(), nullable=True))
    with op.batch_alter_table('step_outcomes') as batch:
        batch.add_column(sa.Column('compensation_status', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column(
            'compensation_attempts', sa.Integer(), server_default='0', nullable=False
        ))
        batch.add_column(sa.Column('compensation_id', sa.String(length=128), nullable=True))
        batch.add_column(sa.Column('compensation_error', sa.Text(), nullable=True))
        batch.create_check_constraint(
            op.f('ck_step_outcomes_compensation_status'),
            f"compensation_status IS NULL OR {_in('compensation_status', COMPENSATION_STATUSES)}",
        )
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=16), server_default='run', nullable=False))
        batch.create_check_constraint(op.f('ck_outbox_kind'), _in('kind', OUTBOX_KINDS))


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.drop_constraint(op.f('ck_outbox_kind'), type_='check')
        batch.drop_column('kind')
    with op.batch_alter_table('step_outcomes') as batch:
        batch.drop_constraint(op.f('ck_step_outcomes_compensation_status'), type_='check')
        batch.drop_column('compensation_error')
        batch.drop_column('compensation_id')
        batch.drop_column('compensation_attempts')
        batch.drop_column('compensation_status')
    with op.batch_alter_table('orders') as batch:
        batch.drop_column('cancel_reason')
    # Rows in the new states would break the old checks: they end as the nearest old ones.
    op.execute("UPDATE orders SET status = 'failed' WHERE status IN ('cancelling', 'cancelled', 'closed')")
    op.execute("UPDATE failures SET state = 'discarded' WHERE state IN ('cancelled', 'closed')")
    op.execute("UPDATE failures SET error_kind = 'permanent' WHERE error_kind = 'compensation'")
    _recheck('failures', 'error_kind', 'error_kind', KIND_BEFORE)
    _recheck('failures', 'state', 'state', FAILURE_STATE_BEFORE)
    _recheck('orders', 'status', 'status', ORDER_BEFORE)
