"""``hub prune`` deletes old settled history in batches and leaves every open order's intact."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

from hub.core.schemas import OrderIn
from hub.db import audit
from hub.db.engine import get_engine, unit_of_work
from hub.db.models import Failure, IntegrationEvent, Order, OutboxMessage
from hub.services import audit_rollup
from hub.services.intake import accept_order
from hub.services.prune import Pruned, prune
from tests.factories import order_payload

OLD = timedelta(days=100)


def order(status: str, *, events: int = 3) -> uuid.UUID:
    """An order with ``events`` more audit rows, its outbox row sent, everything 100 days old."""
    with unit_of_work() as session:
        order_id = accept_order(
            session, OrderIn.model_validate(order_payload()), idempotency_key=None, sender="t"
        ).order_id
        session.get_one(Order, order_id).status = status
        for outbox in session.scalars(select(OutboxMessage)):
            outbox.sent_at = outbox.sent_at or datetime.now(UTC)
        for n in range(events):
            audit.record(
                session, audit.STEP_STARTED, order_id=order_id, step="inventory", attempt=n
            )
    return order_id


def failure(order_id: uuid.UUID, state: str) -> None:
    with unit_of_work() as session:
        session.add(
            Failure(
                order_id=order_id,
                step="inventory",
                error_kind="permanent",
                state=state,
                resolved_at=None if state == "open" else datetime.now(UTC),
            )
        )


def age_everything(by: timedelta, *, orders_by: timedelta | None = None) -> None:
    """Move every row ``by`` into the past (the orders' last change ``orders_by``, if given)."""
    with get_engine().begin() as connection:
        for statement, moved in (
            ("UPDATE integration_events SET created_at = created_at - :by", by),
            (
                "UPDATE orders SET updated_at = updated_at - :by",
                by if orders_by is None else orders_by,
            ),
            ("UPDATE outbox SET sent_at = sent_at - :by", by),
            ("UPDATE failures SET resolved_at = resolved_at - :by", by),
        ):
            connection.execute(text(statement), {"by": moved})


def history(order_id: uuid.UUID) -> int:
    with unit_of_work() as session:
        return (
            session.scalar(select(func.count()).where(IntegrationEvent.order_id == order_id)) or 0
        )


def test_prune_deletes_settled_history_and_keeps_open_orders_whole() -> None:
    # Given old orders: completed, discarded, and three still open (in flight, failed awaiting
    # a replay, received), a breaker event, and everything folded into counts,
    completed, discarded = order("completed"), order("failed")
    failure(discarded, "discarded")
    open_orders = [order("processing"), order("failed"), order("received")]
    failure(open_orders[1], "open")
    with unit_of_work() as session:
        audit.record(session, audit.BREAKER_OPENED, system="erp")
    age_everything(OLD)
    # a completed order with old events but changed last week (replayed, say),
    recent = order("completed")
    age_everything(OLD, orders_by=timedelta(0))
    audit_rollup.fold()
    # and a completed order whose rows are not folded into counts yet,
    unfolded = order("completed")
    age_everything(OLD, orders_by=timedelta(0))
    before = {order_id: history(order_id) for order_id in [*open_orders, recent, unfolded]}

    # When a dry run comes first, then the prune itself, in batches of two,
    dry = prune(older_than=timedelta(days=90), dry_run=True, batch=2)
    done = prune(older_than=timedelta(days=90), dry_run=False, batch=2)

    # then the dry run said exactly what went,
    assert dry == Pruned(audit_rows=2 * 4 + 1, outbox_rows=7, failures=1, dry_run=True)
    assert done == Pruned(audit_rows=2 * 4 + 1, outbox_rows=7, failures=1)
    # the settled orders lost their timeline but not their record,
    assert history(completed) == history(discarded) == 0
    with unit_of_work() as session:
        assert session.get_one(Order, completed).status == "completed"
        assert session.scalar(select(func.count()).select_from(Failure)) == 1
    # and every open order (and the not yet settled or folded ones) kept all of its history.
    assert {order_id: history(order_id) for order_id in before} == before
    assert prune(older_than=timedelta(days=90), dry_run=False) == Pruned()


def test_the_prune_command_dry_run_deletes_nothing() -> None:
    order("completed")
    age_everything(OLD)
    audit_rollup.fold()

    ran = subprocess.run(
        [sys.executable, "-m", "hub", "prune", "--older-than", "90d", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert ran.returncode == 0, ran.stderr
    assert "would delete: 4 audit rows of settled orders, 1 sent outbox rows" in ran.stdout
    with unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(IntegrationEvent)) == 4
