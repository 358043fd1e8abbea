"""Drains the RabbitMQ failure queue into failure records, so nothing dead-lettered goes unseen.

A step the hub gave up on was recorded before its message was rejected; a message that killed
its worker past the queue's delivery limit (poison) was never recorded by a task, and this is
where it gets its record.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from kombu.connection import Connection

from hub import audit
from hub.db import unit_of_work
from hub.failures import FailureReport, open_failure, record_failure

log = logging.getLogger("hub.dead_letters")

TASK_PREFIX = "hub.step."


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
    if not task.startswith(TASK_PREFIX):
        return None
    try:
        args = (json.loads(body) if isinstance(body, (bytes, str)) else body)[0]
        order_id = uuid.UUID(str(args[0]))
    except (ValueError, TypeError, IndexError, KeyError):
        return None
    deaths = headers.get("x-death") or [{}]
    return DeadLetter(
        order_id=order_id,
        step=task[len(TASK_PREFIX) :],
        reason=str(headers.get("x-first-death-reason") or deaths[0].get("reason", "unknown")),
        deliveries=int(headers.get("x-delivery-count") or deaths[0].get("count") or 0),
        queue=str(headers.get("x-first-death-queue") or deaths[0].get("queue", "")),
    )


def record_dead_letter(letter: DeadLetter) -> None:
    with unit_of_work() as session:
        if open_failure(session, letter.order_id, letter.step) is None:
            record_failure(
                session,
                FailureReport(
                    order_id=letter.order_id,
                    step=letter.step,
                    kind="poison",
                    message=(
                        f"message dead-lettered from {letter.queue} ({letter.reason}) after "
                        f"{letter.deliveries} deliveries: it kept killing its worker"
                    ),
                    attempts=letter.deliveries,
                ),
            )
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


def drain(connection: Connection, queue_name: str, *, limit: int = 500) -> int:
    """Record and acknowledge up to ``limit`` dead letters; return how many were taken."""
    channel = connection.default_channel
    taken = 0
    while taken < limit:
        message = channel.basic_get(queue_name, no_ack=False)
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
