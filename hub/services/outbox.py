"""Publishing outbox rows: oldest first, one publisher per row, marked sent after the confirm."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.core.ports import ChainPublisher, PublishError
from hub.core.registry import Pipeline
from hub.core.statuses import OutboxKind
from hub.db import audit, hot_path
from hub.db.engine import get_engine, unit_of_work
from hub.db.models import Order, OutboxMessage

log = logging.getLogger("hub.relay")


def publish_pending(
    session: Session,
    publisher: ChainPublisher,
    *,
    limit: int,
    ids: Sequence[int] | None = None,
    grace: float = 0.0,
) -> int:
    """Publish up to ``limit`` unsent rows (or just ``ids``); return how many were sent.

    Rows are locked ``FOR UPDATE SKIP LOCKED``: a second relay, or the intake's fast path,
    takes other rows instead of publishing these twice. A row is marked sent only after the
    broker's confirm, so a crash in between publishes it again (steps are idempotent) rather
    than never. Rows younger than ``grace`` seconds are left to the intake's fast path, which
    publishes them and marks them without a lock. The caller commits.
    """
    query = select(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
    if grace:
        young = datetime.now(UTC) - timedelta(seconds=grace)
        query = query.where(OutboxMessage.created_at < young)
    if ids is not None:
        query = query.where(OutboxMessage.id.in_(ids))
    rows = session.scalars(
        query.order_by(OutboxMessage.id).limit(limit).with_for_update(skip_locked=True)
    ).all()
    pipelines = _pipelines(session, {row.order_id for row in rows})
    sent = 0
    for row in rows:
        try:
            if row.kind == OutboxKind.COMPENSATE:
                publisher.publish(row.order_id, _to_undo(pipelines, row), compensating=True)
            else:
                publisher.publish(row.order_id, _rest(pipelines, row))
        except PublishError as exc:
            row.publish_attempts += 1
            row.last_error = str(exc)[:500]
            break  # the broker is unwell: the rest would fail the same way
        row.sent_at = datetime.now(UTC)
        row.publish_attempts += 1
        audit.record(
            session, audit.QUEUED, order_id=row.order_id, step=row.start_step, outbox_id=row.id
        )
        sent += 1
    return sent


def _pipelines(session: Session, order_ids: set[uuid.UUID]) -> dict[uuid.UUID, Pipeline]:
    """Each order's own pipeline, as recorded when it was accepted."""
    if not order_ids:
        return {}
    found = session.execute(select(Order.id, Order.pipeline).where(Order.id.in_(order_ids)))
    return {order_id: Pipeline(tuple(steps)) for order_id, steps in found}


def _rest(pipelines: dict[uuid.UUID, Pipeline], row: OutboxMessage) -> tuple[str, ...]:
    pipeline = pipelines.get(row.order_id)
    if pipeline is None or row.start_step not in pipeline.steps:
        # Only a hand-edited database gets here; publishing just the step the row names keeps
        # the failure visible on that step instead of hiding the row.
        return (row.start_step,)
    return pipeline.starting_at(row.start_step)


def _to_undo(pipelines: dict[uuid.UUID, Pipeline], row: OutboxMessage) -> tuple[str, ...]:
    """The compensations' chain: ``start_step`` and every step before it, last first (each
    compensation task checks what its step did and passes on what there is nothing to undo)."""
    pipeline = pipelines.get(row.order_id)
    if pipeline is None or row.start_step not in pipeline.steps:
        return (row.start_step,)
    return tuple(reversed(pipeline.steps[: pipeline.steps.index(row.start_step) + 1]))


def publish_row_now(publisher: ChainPublisher, outbox_id: int) -> bool:
    """Publish one outbox row at once (intake's fast path, a replay); True if it went out.

    On any failure the row stays unsent and the relay publishes it later.
    """
    try:
        with unit_of_work() as session:
            return publish_pending(session, publisher, limit=1, ids=[outbox_id]) == 1
    except Exception:
        log.warning(
            "publishing outbox row %s failed; the relay will retry", outbox_id, exc_info=True
        )
        return False


def publish_accepted(
    publisher: ChainPublisher, *, outbox_id: int, order_id: uuid.UUID, steps: Sequence[str]
) -> bool:
    """The intake's fast path: publish a new order's chain (``steps``, its whole pipeline) and
    mark its row sent, taking no lock (the relay leaves rows this young alone). True if it went
    out; on any failure the row stays unsent and the relay publishes it after its grace
    period."""
    try:
        publisher.publish(order_id, steps)
    except Exception as exc:
        log.warning("publishing order %s failed; the relay will retry", order_id, exc_info=True)
        _note_publish_failure(outbox_id, exc)
        return False
    try:
        engine = get_engine()
        if hot_path.serves(engine):
            hot_path.mark_sent(engine, outbox_id)
        else:
            _mark_sent(outbox_id)
    except Exception:
        # Published but not marked: the relay publishes it again, and the steps are idempotent.
        log.warning("outbox row %s published but not marked sent", outbox_id, exc_info=True)
    return True


def _note_publish_failure(outbox_id: int, exc: Exception) -> None:
    """Why the row is still unsent, for the operator (best effort: the relay retries anyway)."""
    try:
        with unit_of_work() as session:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == outbox_id, OutboxMessage.sent_at.is_(None))
                .values(
                    publish_attempts=OutboxMessage.publish_attempts + 1,
                    last_error=str(exc)[:500],
                )
            )
    except Exception:
        log.warning("could not note the failed publish of outbox row %s", outbox_id)


def _mark_sent(outbox_id: int) -> None:
    with unit_of_work() as session:
        marked = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == outbox_id, OutboxMessage.sent_at.is_(None))
            .values(sent_at=datetime.now(UTC), publish_attempts=OutboxMessage.publish_attempts + 1)
            .returning(OutboxMessage.order_id, OutboxMessage.start_step)
        ).one_or_none()
        if marked is not None:
            audit.record(
                session,
                audit.QUEUED,
                order_id=marked.order_id,
                step=marked.start_step,
                outbox_id=outbox_id,
            )


def relay_once(publisher: ChainPublisher, *, batch_size: int, grace: float = 0.0) -> int:
    with unit_of_work() as session:
        return publish_pending(session, publisher, limit=batch_size, grace=grace)
