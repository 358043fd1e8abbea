"""a step's start refuses an order that a cancel ended while the start waited for its step row

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 02:20:00.000000

The one-statement start (hub/db/hot_path.py) reads the order's status in the statement's
snapshot. A start whose snapshot predates a cancel that committed while the start waited for the
step row (the cancel holds it) started the step of a cancelled order, and nothing undid it. The
start now re-reads the order once it holds the step row and, if the order moved on, calls this
function, which raises: the whole statement is rolled back, and the hub records a refusal.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite (trial mode) runs the ORM step store, which does not use it
    op.execute(
        """
CREATE FUNCTION hub_refuse_start(order_status text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'order is %', order_status USING ERRCODE = 'P0H01', DETAIL = order_status;
END
$$
"""
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION hub_refuse_start(text)")
