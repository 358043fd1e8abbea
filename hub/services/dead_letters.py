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
from typing import Any

from kombu.connection import Connection
from kombu.entity import Queue
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.pipeline import STEPS, step_of_task
from hub.db import audit
from hub.db.engine import unit_of_work
from hub.db.models import OutboxMessage, StepOutcome
from hub.services.failures import FailureReport, open_failure, record_failure

log = logging.getLogger("hub.dead_letters")


@dataclass(frozen=True)
class DeadLetter:
    order_id: uuid.UUID
    step: str
    reason: str  # rejected | delivery_limit | expired | maxlen
    deliveries: int
    queue: str


def parse_dead_letter(headers: dict[str, Any], body: Any) -> DeadLetter | None:
    """What a dead-lettered Celery message was about; None if it is not one of our steps."""
    task = str(headers.get("task", ""))
    step = step_of_task(task)
    if step is None:
        return None
    try:
        args = (json.loads(body) if isinstance(body, (bytes, str)) else body)[0]
        order_id = uuid.UUID(str(args[0]))
    except (ValueError, TypeError, IndexError, KeyError):
        return None
    deaths = headers.get("x-death") or [{}]
    return DeadLetter(
        order_id=order_id,
        step=step,
        reason=str(headers.get("x-first-death-reason") or deaths[0].get("reason", "unknown")),
        deliveries=int(headers.get("x-delivery-count") or deaths[0].get("count") or 0),
        queue=str(headers.get("x-first-death-queue") or deaths[0].get("queue", "")),
    )


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
    """Queue the chain from the step after ``step`` if that one has not started."""
    later = STEPS[STEPS.index(step) + 1 :]
    if not later:
        return
    following = session.get(StepOutcome, (order_id, later[0]), with_for_update=True)
    if following is None or following.status != "pending":
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


def record_dead_letter(letter: DeadLetter) -> None:
    with unit_of_work() as session:
        step_row = session.get(StepOutcome, (letter.order_id, letter.step))
        if step_row is not None and step_row.status == "succeeded":
            # The step did its work but its task failed afterwards (say, publishing the next
            # step): the chain would stop here for good, so queue the rest of it.
            resume_after(session, letter.order_id, letter.step)
        elif open_failure(session, letter.order_id, letter.step) is None:
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
