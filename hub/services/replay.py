"""Replaying and discarding failures: precise, recorded, safe to repeat or race.

A replay resumes the order's chain at the failed step (earlier steps are not run again)
through the outbox, so it is published exactly like a new order, by the same relay.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from hub.core.failure_groups import GroupKey
from hub.core.statuses import FailureKind, FailureState
from hub.db import audit
from hub.db.engine import unit_of_work
from hub.db.models import Failure, Order, OutboxMessage, StepOutcome
from hub.services.cancellation import (
    AlreadyCompleted,
    NotCancellable,
    cancel_order,
    close_order,
    replay_compensation,
)

# The most failures one bulk replay or discard takes on (the CLI's and the page's).
MAX_BULK = 100_000


@dataclass(frozen=True)
class FailureFilter:
    ids: Sequence[uuid.UUID] = ()
    step: str | None = None
    error_kind: str | None = None
    code: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    state: str = "open"
    # A failure group's id (hub.core.failure_groups): computed from each row's message, so it
    # narrows in Python after the SQL filters.
    group: str | None = None
    # Only failures that existed at this moment: a bulk action confirmed on a page acts on what
    # the operator saw, not on failures that arrived while they read the confirmation.
    opened_before: datetime | None = None


def group_of(failure: Failure) -> str:
    """The id of the failure group a failure belongs to."""
    return GroupKey.of(
        step=failure.step, kind=failure.error_kind, code=failure.error_code, message=failure.message
    ).group_id


def failures_query(criteria: FailureFilter) -> Select[Failure]:
    query = select(Failure).where(Failure.state == criteria.state)
    if criteria.ids:
        query = query.where(Failure.id.in_(criteria.ids))
    if criteria.step:
        query = query.where(Failure.step == criteria.step)
    if criteria.error_kind:
        query = query.where(Failure.error_kind == criteria.error_kind)
    if criteria.code:
        query = query.where(Failure.error_code == criteria.code)
    if criteria.since:
        query = query.where(Failure.last_failed_at >= criteria.since)
    if criteria.until:
        query = query.where(Failure.last_failed_at < criteria.until)
    if criteria.opened_before:
        query = query.where(Failure.first_failed_at <= criteria.opened_before)
    return query.order_by(Failure.first_failed_at, Failure.id)


def find_failures(session: Session, criteria: FailureFilter, *, limit: int = 1000) -> list[Failure]:
    """The matching failures, oldest first, at most ``limit`` of them."""
    if criteria.group is None:
        return list(session.scalars(failures_query(criteria).limit(limit)))
    # A group is known only once a row's message is fingerprinted: read every candidate.
    matching = (
        f for f in session.scalars(failures_query(criteria)) if group_of(f) == criteria.group
    )
    return list(islice(matching, limit))


def count_failures(session: Session, criteria: FailureFilter) -> int:
    """How many failures match (what a confirmation states before a bulk action)."""
    if criteria.group is not None:
        return len(find_failures(session, criteria, limit=MAX_BULK))
    return int(
        session.scalar(select(func.count()).select_from(failures_query(criteria).subquery())) or 0
    )


@dataclass(frozen=True)
class Resolution:
    failure_id: uuid.UUID
    order_id: uuid.UUID
    step: str
    # replayed | discarded | cancelled | closed | skipped (no longer open: resolved by someone
    # else) | refused (the order is in no state for it: ``detail`` says why)
    outcome: str
    outbox_id: int | None = None
    detail: str = ""


def _close(
    session: Session, failure_id: uuid.UUID, *, state: str, operator: str, reason: str
) -> Failure | Resolution:
    """Lock the failure and close it as ``state``; a failure no longer open gives 'skipped'."""
    failure = session.get(Failure, failure_id, with_for_update=True)
    if failure is None:
        raise LookupError(f"no failure {failure_id}")
    if failure.state != "open":
        return Resolution(failure.id, failure.order_id, failure.step, "skipped")
    failure.state = state
    failure.resolved_at = datetime.now(UTC)
    failure.resolved_by = operator
    failure.resolution_reason = reason
    return failure


def replay_one(
    session: Session, failure_id: uuid.UUID, *, operator: str, reason: str
) -> Resolution:
    """Reopen the failed step and queue its chain; a second replay of the same failure is a no-op.

    The row lock makes two concurrent replays of one failure queue it once: the second sees it
    already replayed. The caller commits.
    """
    failure = _close(session, failure_id, state="replayed", operator=operator, reason=reason)
    if isinstance(failure, Resolution):
        return failure
    if failure.error_kind == FailureKind.COMPENSATION:
        return _replay_compensation(session, failure, operator=operator, reason=reason)
    step_row = session.get(StepOutcome, (failure.order_id, failure.step), with_for_update=True)
    order = session.get(Order, failure.order_id, with_for_update=True)
    assert step_row is not None and order is not None
    step_row.status = "pending"
    # A fresh budget of attempts: the retry policy counts from here; the audit keeps the past.
    step_row.attempts = 0
    order.status = "processing"
    outbox = OutboxMessage(order_id=failure.order_id, start_step=failure.step)
    session.add(outbox)
    audit.record(
        session,
        audit.REPLAYED,
        order_id=failure.order_id,
        step=failure.step,
        failure_id=str(failure.id),
        operator=operator,
        reason=reason,
        previous_attempts=failure.attempts,
        error_kind=failure.error_kind,
    )
    session.flush()
    return Resolution(failure.id, failure.order_id, failure.step, "replayed", outbox.id)


def _replay_compensation(
    session: Session, failure: Failure, *, operator: str, reason: str
) -> Resolution:
    """A compensation that failed for good, tried again (the order is still cancelling): it and
    the compensations before it are queued again; what was compensated stays compensated."""
    outbox = replay_compensation(session, failure.order_id, failure.step)
    audit.record(
        session,
        audit.REPLAYED,
        order_id=failure.order_id,
        step=failure.step,
        failure_id=str(failure.id),
        operator=operator,
        reason=reason,
        previous_attempts=failure.attempts,
        error_kind=failure.error_kind,
    )
    return Resolution(failure.id, failure.order_id, failure.step, "replayed", outbox.id)


def cancel_one(
    session: Session, failure_id: uuid.UUID, *, operator: str, reason: str
) -> Resolution:
    """Cancel the failed order: its open failures close as cancelled, and the steps it did are
    compensated (``hub.services.cancellation``). For a compensation's own failure (the order is
    cancelling already) this tries that compensation again. The caller commits, then publishes
    ``outbox_id``."""
    failure = session.get(Failure, failure_id, with_for_update=True)
    if failure is None:
        raise LookupError(f"no failure {failure_id}")
    if failure.state != FailureState.OPEN:
        return Resolution(failure.id, failure.order_id, failure.step, "skipped")
    if failure.error_kind == FailureKind.COMPENSATION:
        return replay_one(session, failure_id, operator=operator, reason=reason)
    try:
        cancelled = cancel_order(session, failure.order_id, by=operator, reason=reason)
    except AlreadyCompleted as exc:
        return Resolution(failure.id, failure.order_id, failure.step, "refused", detail=str(exc))
    return Resolution(failure.id, failure.order_id, failure.step, "cancelled", cancelled.outbox_id)


def close_one(session: Session, failure_id: uuid.UUID, *, operator: str, reason: str) -> Resolution:
    """Close the failed (or cancelling) order as it stands, without compensating; its open
    failures close too. The caller commits."""
    failure = session.get(Failure, failure_id, with_for_update=True)
    if failure is None:
        raise LookupError(f"no failure {failure_id}")
    if failure.state != FailureState.OPEN:
        return Resolution(failure.id, failure.order_id, failure.step, "skipped")
    try:
        close_order(session, failure.order_id, by=operator, reason=reason)
    except NotCancellable as exc:
        return Resolution(failure.id, failure.order_id, failure.step, "refused", detail=str(exc))
    return Resolution(failure.id, failure.order_id, failure.step, "closed")


def discard_one(
    session: Session, failure_id: uuid.UUID, *, operator: str, reason: str
) -> Resolution:
    """Close a failure without replaying it; the order stays ``failed``. The caller commits."""
    failure = _close(session, failure_id, state="discarded", operator=operator, reason=reason)
    if isinstance(failure, Resolution):
        return failure
    audit.record(
        session,
        audit.DISCARDED,
        status="error",
        order_id=failure.order_id,
        step=failure.step,
        failure_id=str(failure.id),
        operator=operator,
        reason=reason,
    )
    return Resolution(failure.id, failure.order_id, failure.step, "discarded")


Action = Callable[..., Resolution]


def resolve_many(
    failure_ids: Sequence[uuid.UUID],
    action: Action,
    *,
    operator: str,
    reason: str,
    per_second: float | None = None,
    on_each: Callable[[Resolution], None] = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Resolution]:
    """Apply ``action`` to each failure in its own transaction, at most ``per_second`` a second.

    The rate limit keeps a bulk replay from flooding a system that has only just recovered.
    """
    results = []
    for index, failure_id in enumerate(failure_ids):
        if per_second and index:
            sleep(1 / per_second)
        with unit_of_work() as session:
            result = action(session, failure_id, operator=operator, reason=reason)
        results.append(result)
        on_each(result)
    return results
