"""How many messages a queue holds, by passive ``queue.declare`` (no management plugin needed).

A passive declare answers with the messages ready (not those a worker holds unacknowledged)
and creates nothing; for a queue that does not exist RabbitMQ closes the channel, so a new one
is opened for the next question.
"""

from __future__ import annotations

from amqp.exceptions import NotFound
from kombu.connection import Connection


class QueueDepths:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._channel = connection.channel()

    def of(self, queue: str) -> int | None:
        """Messages ready in ``queue``, or None when there is no such queue."""
        try:
            _, messages, _ = self._channel.queue_declare(queue, passive=True)
        except NotFound:
            self._channel = self._connection.channel()
            return None
        return int(messages)

    def consumers(self, queue: str) -> int:
        """Consumers on ``queue`` now (0 when there is no such queue)."""
        try:
            _, _, consumers = self._channel.queue_declare(queue, passive=True)
        except NotFound:
            self._channel = self._connection.channel()
            return 0
        return int(consumers)

    def close(self) -> None:
        self._channel.close()
