"""The real ``ChainPublisher``: the chain of an order, from a given step, onto RabbitMQ."""

from __future__ import annotations

import uuid

from amqp.exceptions import AMQPError
from celery import Celery, chain
from kombu.exceptions import KombuError, OperationalError

from hub.core.pipeline import STEPS, task_name
from hub.core.ports import PublishError


def order_chain(app: Celery, order_id: uuid.UUID, start_step: str) -> chain:
    """Only the order id travels: each task re-reads what it needs from PostgreSQL."""
    steps = STEPS[STEPS.index(start_step) :]
    return chain(
        *(app.signature(task_name(step), args=(str(order_id),), immutable=True) for step in steps)
    )


class CeleryChainPublisher:
    def __init__(self, app: Celery, *, timeout: float) -> None:
        self._app = app
        self._timeout = timeout

    def publish(self, order_id: uuid.UUID, start_step: str) -> None:
        try:
            order_chain(self._app, order_id, start_step).apply_async(
                retry=False, timeout=self._timeout, confirm_timeout=self._timeout
            )
        except (OperationalError, KombuError, AMQPError, OSError) as exc:
            raise PublishError(f"RabbitMQ did not take the message: {exc}") from exc
