"""The RabbitMQ half of a snapshot: queue depths by passive declare, and the workers online.

No management plugin is assumed: a passive ``queue.declare`` answers with the message count
(messages ready, not those a worker holds unacknowledged) and creates nothing.
"""

from __future__ import annotations

import logging

from celery import Celery
from kombu.connection import Connection
from kombu.transport.native_delayed_delivery import MAX_LEVEL, level_name

from hub.broker.depths import QueueDepths
from hub.broker.topology import Topology
from hub.core.registry import REGISTRY
from hub.observability.diagnosis import rabbitmq_hint
from hub.observability.health import ServiceDown, broker_where, ensure_any_node
from hub.observability.snapshot.facts import BrokerFacts
from hub.settings import Settings

log = logging.getLogger("hub.snapshot")

DELAYED_QUEUES = tuple(level_name(level) for level in range(MAX_LEVEL + 1))


def _connection(settings: Settings, timeout: float) -> Connection:
    return Connection(settings.broker_url, connect_timeout=timeout)


def read_broker(settings: Settings, *, timeout: float = 3.0) -> BrokerFacts | ServiceDown:
    """Depths of our work queues, the failure queue and the delayed-delivery queues."""
    topology = Topology(settings.queue_prefix)
    connection = _connection(settings, timeout)
    try:
        ensure_any_node(connection, timeout=timeout)
        depths = QueueDepths(connection)
        work = {
            topology.queue_name(step): depths.of(topology.queue_name(step))
            for step in REGISTRY.step_names
        }
        failure = depths.of(topology.failure_queue_name)
        delayed = [n for n in (depths.of(name) for name in DELAYED_QUEUES) if n is not None]
    except Exception as exc:  # whatever kombu or the socket raise, the answer is the same
        found = rabbitmq_hint(exc, settings.broker_url)
        log.info("snapshot: RabbitMQ not readable: %s", found.reason)
        return ServiceDown(
            "RabbitMQ", broker_where(settings.broker_url), found.reason, found.hint, found.answered
        )
    finally:
        connection.release()
    return BrokerFacts(
        work_queues=work,
        failure_queue=failure,
        delayed_messages=sum(delayed),
        delayed_queues=len(delayed),
    )


def read_workers(
    settings: Settings, app: Celery, *, timeout: float = 1.0
) -> tuple[str, ...] | ServiceDown:
    """Node names of the workers that answer within ``timeout`` and consume one of our queues.

    Other hubs' workers on the same vhost answer the broadcast too; the queue filter keeps
    them out of our count.
    """
    ours = {Topology(settings.queue_prefix).queue_name(step) for step in REGISTRY.step_names}
    connection = _connection(settings, timeout)
    try:
        ensure_any_node(connection, timeout=timeout)
        replies = app.control.inspect(timeout=timeout, connection=connection).active_queues()
    except Exception as exc:
        found = rabbitmq_hint(exc, settings.broker_url)
        return ServiceDown(
            "RabbitMQ", broker_where(settings.broker_url), found.reason, found.hint, found.answered
        )
    finally:
        connection.release()
    return tuple(
        sorted(
            node
            for node, queues in (replies or {}).items()
            if any(queue.get("name") in ours for queue in queues or [])
        )
    )
