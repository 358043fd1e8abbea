"""RabbitMQ topology: one topic exchange, a quorum work queue per step, a failure queue.

Quorum queues bound to a topic exchange are what let Celery's native delayed delivery hold
retry delays inside RabbitMQ (``celery_delayed_*``) rather than in worker memory.

Trial mode's broker (kombu's ``filesystem://``) has none of that: there the topology is
``plain``, one direct exchange and a plain queue per step, and no failure queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from kombu.connection import Connection
from kombu.entity import Exchange, Queue

from hub.core.registry import REGISTRY
from hub.settings import Settings

# A message that kills its worker this many times is dead-lettered instead of looping forever.
DELIVERY_LIMIT = 5


@dataclass(frozen=True)
class Topology:
    prefix: str
    # No queue arguments (quorum, delivery limit, dead-lettering): for filesystem://.
    plain: bool = False

    @classmethod
    def for_settings(cls, settings: Settings) -> Topology:
        return cls(settings.queue_prefix, plain=settings.embedded_broker)

    @property
    def exchange_type(self) -> str:
        # kombu's virtual transports treat an exchange they have not seen declared in this
        # process as direct: a direct one routes the same in every process.
        return "direct" if self.plain else "topic"

    @property
    def exchange(self) -> Exchange:
        return Exchange(self.prefix, type=self.exchange_type, durable=True)

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
        if self.plain:
            return Queue(
                self.queue_name(step),
                self.exchange,
                routing_key=self.routing_key(step),
                durable=True,
            )
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
        return [self.work_queue(step) for step in REGISTRY.step_names]

    def failure_queue(self) -> Queue:
        return Queue(
            self.failure_queue_name,
            self.dead_letter_exchange,
            routing_key=f"{self.prefix}.failed.#",
            durable=True,
            queue_arguments={"x-queue-type": "quorum"},
        )

    def declare(self, connection: Connection) -> None:
        """Declare exchanges and queues (idempotent), the failure queue included if any."""
        channel = connection.default_channel
        failure = [] if self.plain else [self.failure_queue()]
        for queue in [*self.work_queues(), *failure]:
            queue.bind(channel).declare()
