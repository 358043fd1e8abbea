"""The Celery configuration of the hub, from the settings: the same for workers and publishers."""

from __future__ import annotations

from typing import Any

from hub.broker.filesystem import transport_options
from hub.broker.topology import Topology
from hub.core.registry import REGISTRY, compensate_task_name, task_name
from hub.settings import Settings


def celery_config(settings: Settings) -> dict[str, Any]:
    topology = Topology.for_settings(settings)
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": settings.publish_timeout,
        # Each publish waits for the broker's ack: a message is either in RabbitMQ or an error.
        "broker_transport_options": {"confirm_publish": True},
        "task_acks_late": True,
        # A task that fails unexpectedly is rejected, not acked: RabbitMQ dead-letters it into
        # the failure queue, where it gets a failure record instead of vanishing.
        "task_acks_on_failure_or_timeout": False,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # A message it cannot decode (a pickle, say) is dead-lettered rather than dropped.
        "worker_consumer": "tasks.consumer:DeadLetteringConsumer",
        "event_serializer": "json",
        # The hub's own tables say where an order is; Celery results would be a second truth.
        "task_ignore_result": True,
        "result_backend": None,
        "task_queues": topology.work_queues(),
        "task_default_queue": topology.queue_name(REGISTRY.step_names[0]),
        "task_default_exchange": topology.exchange.name,
        "task_default_exchange_type": topology.exchange_type,
        "task_default_routing_key": topology.routing_key(REGISTRY.step_names[0]),
        "task_create_missing_queues": False,
        # A compensation runs on its step's queue, in the same workers and limits.
        "task_routes": {
            name(step): {"queue": topology.queue_name(step)}
            for step in REGISTRY.step_names
            for name in (task_name, compensate_task_name)
        },
        # Control and event exchanges are global by default: two hubs (or test runs) on one vhost
        # would then share worker names and Flower would see both.
        "control_exchange": f"{settings.queue_prefix}.control",
        "event_exchange": f"{settings.queue_prefix}.events",
        # Task events cost a confirmed publish each (received, started, succeeded or retried:
        # three per run of a step, nearly half of a worker's main process). Workers send them
        # only once Flower asks: it broadcasts enable_events when it starts and every 5 s.
        # "task-sent" would be one more publish per task, and Flower does without it.
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_native_delayed_delivery_queue_type": "quorum",
    }
    if settings.embedded_broker:
        config.update(_embedded_broker(settings))
    return config


def _embedded_broker(settings: Settings) -> dict[str, Any]:
    """Trial mode's filesystem:// broker: no publisher confirms, no quorum queues to delay in.

    A countdown retry is then an ETA message that the worker holds in memory until it is due.
    """
    return {
        # No broadcast on this transport, so Flower cannot switch task events on: trial
        # workers send them from the start (their cost matters little in a trial).
        "worker_send_task_events": True,
        # kombu's filesystem transport, writing each message file whole (see the module).
        "broker_transport": "hub.broker.filesystem:Transport",
        "broker_transport_options": transport_options(settings),
        # Without an asynchronous transport Celery drives a prefork pool from helper threads
        # that outlive a SIGTERM to the process group (how the demo stops its children) by
        # seconds, or until killed, losing what the worker held; a thread pool stops at once.
        "worker_pool": "threads",
    }
