"""Publishing outbox rows: oldest first, one publisher per row, marked sent after the confirm."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.ports import ChainPublisher, PublishError
from hub.db import audit
from hub.db.engine import unit_of_work
from hub.db.models import OutboxMessage

log = logging.getLogger("hub.relay")


def publish_pending(
    session: Session,
    publisher: ChainPublisher,
    *,
    limit: int,
    ids: Sequence[int] | None = None,
) -> int:
    """Publish up to ``limit`` unsent rows (or just ``ids``); return how many were sent.

    Rows are locked ``FOR UPDATE SKIP LOCKED``: a second relay, or the intake's fast path,
    takes other rows instead of publishing these twice. A row is marked sent only after the
    broker's confirm, so a crash in between publishes it again (steps are idempotent) rather
    than never. The caller commits.
    """
    query = select(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
    if ids is not None:
        query = query.where(OutboxMessage.id.in_(ids))
    rows = session.scalars(
        query.order_by(OutboxMessage.id).limit(limit).with_for_update(skip_locked=True)
    ).all()
    sent = 0
    for row in rows:
        try:
            publisher.publish(row.order_id, row.start_step)
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


def relay_once(publisher: ChainPublisher, *, batch_size: int) -> int:
    with unit_of_work() as session:
        return publish_pending(session, publisher, limit=batch_size)
