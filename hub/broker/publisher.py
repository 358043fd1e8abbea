"""The real ``ChainPublisher``: the chain of an order, from a given step, onto RabbitMQ."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from amqp.exceptions import AMQPError
from celery import Celery, chain
from kombu.exceptions import KombuError, OperationalError

from hub.core.ports import PublishError
from hub.core.registry import compensate_task_name, task_name


def order_chain(
    app: Celery, order_id: uuid.UUID, steps: Sequence[str], *, compensating: bool = False
) -> chain:
    """Only the order id travels: each task re-reads what it needs from PostgreSQL. ``steps``
    are the rest of the order's own pipeline (recorded when it was accepted), or the steps to
    undo, last first (``compensating``)."""
    name = compensate_task_name if compensating else task_name
    return chain(
        *(app.signature(name(step), args=(str(order_id),), immutable=True) for step in steps)
    )


class CeleryChainPublisher:
    def __init__(self, app: Celery, *, timeout: float) -> None:
        self._app = app
        self._timeout = timeout

    def publish(
        self, order_id: uuid.UUID, steps: Sequence[str], *, compensating: bool = False
    ) -> None:
        try:
            order_chain(self._app, order_id, steps, compensating=compensating).apply_async(
                retry=False, timeout=self._timeout, confirm_timeout=self._timeout
            )
        except (OperationalError, KombuError, AMQPError, OSError) as exc:
            raise PublishError(f"RabbitMQ did not take the message: {exc}") from exc
