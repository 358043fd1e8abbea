"""Drains the RabbitMQ failure queue into failure records, so nothing dead-lettered goes unseen.

A step the hub gave up on was recorded before its message was rejected; a message that killed
its worker past the queue's delivery limit (poison) was never recorded by a task, and this is
where it gets its record.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from kombu.connection import Connection
from kombu.entity import Queue
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.errors import PermanentError
from hub.core.registry import compensated_step_of_task, step_of_task
from hub.core.statuses import FailureState, StepStatus
from hub.db import audit
from hub.db.compensation_store import SqlCompensationRecorder
from hub.db.engine import unit_of_work
from hub.db.failures import FailureReport, open_failure, record_failure
from hub.db.models import Failure, Order, OutboxMessage, StepOutcome

log = logging.getLogger("hub.dead_letters")


@dataclass(frozen=True)
class DeadLetter:
    order_id: uuid.UUID
    step: str
    reason: str  # rejected | delivery_limit | expired | maxlen
    deliveries: int
    queue: str
    # A compensation's message (hub.compensate.<step>), not the step's.
    compensating: bool = False
    # When RabbitMQ dead-lettered it (x-death ``time``: whole seconds, truncated), if said.
    died_at: datetime | None = None


def parse_dead_letter(headers: dict[str, Any], body: Any) -> DeadLetter | None:
    """What a dead-lettered Celery message was about; None if it is not one of our steps."""
    task = str(headers.get("task", ""))
    step = step_of_task(task)
    undone = compensated_step_of_task(task)
    if step is None and undone is None:
        return None
    try:
        args = (json.loads(body) if isinstance(body, (bytes, str)) else body)[0]
        order_id = uuid.UUID(str(args[0]))
    except (ValueError, TypeError, IndexError, KeyError):
        return None
    deaths = headers.get("x-death") or [{}]
    died = deaths[0].get("time")
    return DeadLetter(
        order_id=order_id,
        step=step or undone or "",
        compensating=step is None,
        reason=str(headers.get("x-first-death-reason") or deaths[0].get("reason", "unknown")),
        deliveries=int(headers.get("x-delivery-count") or deaths[0].get("count") or 0),
        queue=str(headers.get("x-first-death-queue") or deaths[0].get("queue", "")),
        # py-amqp decodes AMQP timestamps as naive UTC.
        died_at=(died if died.tzinfo else died.replace(tzinfo=UTC))
        if isinstance(died, datetime)
        else None,
    )


def replayed_before_it(session: Session, letter: DeadLetter) -> bool:
    """The letter is the rejected message of a failure already recorded and since replayed: the
    hub records a failure, then rejects the message, and the operator's replay came before this
    drain took it. Its failure was recorded no later than its death, its replay no earlier
    (x-death's time is truncated to the second: a second of slack below, none above; a task
    that crashed within that second after a replay goes unrecorded, its replay running)."""
    if letter.died_at is None:
        return False
    found = session.scalar(
        select(Failure.id).where(
            Failure.order_id == letter.order_id,
            Failure.step == letter.step,
            Failure.state == FailureState.REPLAYED,
            Failure.last_failed_at <= letter.died_at + timedelta(seconds=1),
            Failure.resolved_at >= letter.died_at,
        )
    )
    return found is not None


def unrecorded_failure(letter: DeadLetter) -> FailureReport:
    """A dead letter no task recorded: it killed its worker too often, or its task crashed."""
    if letter.reason == "delivery_limit":
        return FailureReport(
            order_id=letter.order_id,
            step=letter.step,
            kind="poison",
            attempts=letter.deliveries,
            message=(
                f"dead-lettered from {letter.queue} after {letter.deliveries} deliveries "
                "(delivery limit): it kept killing its worker"
            ),
        )
    return FailureReport(
        order_id=letter.order_id,
        step=letter.step,
        kind="crashed",
        attempts=letter.deliveries,
        message=(
            f"dead-lettered from {letter.queue} ({letter.reason}): the task failed "
            "unexpectedly; see the worker log for its traceback"
        ),
    )


def resume_after(session: Session, order_id: uuid.UUID, step: str) -> None:
    """Queue the chain from the step after ``step`` (in the order's own pipeline) if that one
    has not started."""
    pipeline = session.scalar(select(Order.pipeline).where(Order.id == order_id)) or ()
    if step not in pipeline:
        return
    later = pipeline[pipeline.index(step) + 1 :]
    if not later:
        return
    following = session.get(StepOutcome, (order_id, later[0]), with_for_update=True)
    if following is None or following.status != StepStatus.PENDING:
        return
    already = session.scalar(
        select(OutboxMessage.id).where(
            OutboxMessage.order_id == order_id, OutboxMessage.start_step == later[0]
        )
    )
    if already is not None:
        return  # queued once already (another copy of this dead letter)
    session.add(OutboxMessage(order_id=order_id, start_step=later[0]))
    audit.record(session, audit.CHAIN_RESUMED, order_id=order_id, step=later[0], after=step)


def _record_compensation_letter(letter: DeadLetter) -> None:
    """A compensation's message dead-lettered: one that gave up was recorded before it was
    rejected; one that crashed or killed its worker gets its failure (kind compensation) now."""
    with unit_of_work() as session:
        row = session.get(StepOutcome, (letter.order_id, letter.step))
        recorded = row is None or row.compensation_status in ("succeeded", "failed")
    if not recorded:
        report = unrecorded_failure(letter)
        SqlCompensationRecorder().gave_up(
            letter.order_id,
            letter.step,
            kind=report.kind,
            error=PermanentError(system="hub", message=report.message, code=letter.reason),
            attempts=letter.deliveries,
        )
    with unit_of_work() as session:
        audit.record(
            session,
            audit.DEAD_LETTERED,
            status="error",
            order_id=letter.order_id,
            step=letter.step,
            attempt=letter.deliveries,
            reason=letter.reason,
            queue=letter.queue,
            compensating=True,
        )


def record_dead_letter(letter: DeadLetter) -> None:
    if letter.compensating:
        _record_compensation_letter(letter)
        return
    with unit_of_work() as session:
        step_row = session.get(StepOutcome, (letter.order_id, letter.step))
        if step_row is not None and step_row.status == "succeeded":
            # The step did its work but its task failed afterwards (say, publishing the next
            # step): the chain would stop here for good, so queue the rest of it.
            resume_after(session, letter.order_id, letter.step)
        elif open_failure(session, letter.order_id, letter.step) is None and not (
            replayed_before_it(session, letter)
        ):
            # x-death counts dead-letterings, not deliveries; our attempts count those.
            attempts = step_row.attempts if step_row else letter.deliveries
            record_failure(session, unrecorded_failure(replace(letter, deliveries=attempts)))
        audit.record(
            session,
            audit.DEAD_LETTERED,
            status="error",
            order_id=letter.order_id,
            step=letter.step,
            attempt=letter.deliveries,
            reason=letter.reason,
            queue=letter.queue,
        )


def drain(connection: Connection, queue: Queue, *, limit: int = 500) -> int:
    """Record and acknowledge up to ``limit`` dead letters; return how many were taken."""
    bound = queue.bind(connection.default_channel)
    taken = 0
    while taken < limit:
        message = bound.get(
            no_ack=False, accept=["json", "application/x-python-serialize", "yaml", "msgpack"]
        )
        if message is None:
            break
        letter = parse_dead_letter(dict(message.headers or {}), message.body)
        if letter is None:
            # Not ours (or not even JSON, say a pickle): never executed, kept on record.
            headers = message.headers or {}
            with unit_of_work() as session:
                audit.record(
                    session,
                    audit.DEAD_LETTER_UNKNOWN,
                    status="error",
                    task=str(headers.get("task", ""))[:100],
                    content_type=str(message.content_type)[:100],
                    reason=str(headers.get("x-first-death-reason", "")),
                )
        else:
            record_dead_letter(letter)  # before the ack: a crash here re-reads the message
        message.ack()
        taken += 1
    return taken
