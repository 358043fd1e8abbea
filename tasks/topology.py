"""RabbitMQ topology: one topic exchange, a quorum work queue per step, a failure queue.

Quorum queues bound to a topic exchange are what let Celery's native delayed delivery hold
retry delays inside RabbitMQ (``celery_delayed_*``) rather than in worker memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from kombu.connection import Connection
from kombu.entity import Exchange, Queue

from hub.settings import STEPS

# A message that kills its worker this many times is dead-lettered instead of looping forever.
DELIVERY_LIMIT = 5


@dataclass(frozen=True)
class Topology:
    prefix: str

    @property
    def exchange(self) -> Exchange:
        return Exchange(self.prefix, type="topic", durable=True)

    @property
    def dead_letter_exchange(self) -> Exchange:
        return Exchange(f"{self.prefix}.dlx", type="topic", durable=True)

    def queue_name(self, step: str) -> str:
        return f"{self.prefix}.{step}"

    def routing_key(self, step: str) -> str:
        return f"{self.prefix}.{step}"

    @property
    def failure_queue_name(self) -> str:
        return f"{self.prefix}.failed"

    def work_queue(self, step: str) -> Queue:
        return Queue(
            self.queue_name(step),
            self.exchange,
            routing_key=self.routing_key(step),
            durable=True,
            queue_arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": DELIVERY_LIMIT,
                "x-dead-letter-exchange": self.dead_letter_exchange.name,
                "x-dead-letter-routing-key": f"{self.prefix}.failed.{step}",
            },
        )

    def work_queues(self) -> list[Queue]:
        return [self.work_queue(step) for step in STEPS]

    def failure_queue(self) -> Queue:
        return Queue(
            self.failure_queue_name,
            self.dead_letter_exchange,
            routing_key=f"{self.prefix}.failed.#",
            durable=True,
            queue_arguments={"x-queue-type": "quorum"},
        )

    def declare(self, connection: Connection) -> None:
        """Declare exchanges and queues (idempotent), the failure queue included."""
        channel = connection.default_channel
        for queue in [*self.work_queues(), self.failure_queue()]:
            queue.bind(channel).declare()
