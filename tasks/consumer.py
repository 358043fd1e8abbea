"""The worker's consumer, changed in one respect: a message it cannot decode is dead-lettered.

Celery acknowledges (drops) a message whose body it cannot decode, such as a pickle when only
JSON is accepted and the task name is not in the headers. Rejecting it instead lets RabbitMQ
dead-letter it into the failure queue, where it is recorded, so nothing injected goes unseen.
Messages that name a task in their headers are already rejected by Celery itself.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer import Consumer

log = logging.getLogger("hub.tasks.consumer")


class DeadLetteringConsumer(Consumer):  # type: ignore[misc]
    def on_decode_error(self, message: Any, exc: Exception) -> None:
        # The body stays out of the log: it is the sender's, and could hold anything.
        log.critical(
            "undecodable message dead-lettered, never executed: %s (content type %s)",
            type(exc).__name__,
            message.content_type,
        )
        message.reject_log_error(log, self.connection_errors, requeue=False)
