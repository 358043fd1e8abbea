"""``GET /metrics``: the hub in Prometheus text format, computed from a snapshot at scrape time.

The workers and the relay are other processes (on other hosts, in production), so nothing is
counted in this one: each scrape reads PostgreSQL and RabbitMQ (see ``hub.observability.snapshot``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from hub.core.pipeline import FAILURE_KINDS, ORDER_STATUSES, STEPS, SYSTEM_OF_STEP
from hub.observability.health import ServiceDown
from hub.observability.snapshot.facts import (
    LATENCY_BUCKETS,
    BreakerWindow,
    BrokerFacts,
    DatabaseFacts,
    Latency,
    Snapshot,
)
from hub.observability.snapshot.take import take_snapshot
from hub.settings import Settings

# Breaker states as numbers, so a graph can show them and an alert can compare them.
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def _counter(name: str, doc: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


def database_metrics(facts: DatabaseFacts) -> Iterator[Metric]:
    """Families read from PostgreSQL; every known label value appears, at 0 if need be."""
    for name, value, doc in (
        ("hub_orders_received", facts.orders_received, "Orders accepted by the intake."),
        ("hub_orders_completed", facts.orders_completed, "Orders that completed every step."),
        ("hub_orders_failed", facts.orders_failed, "Times an order failed at a step."),
        (
            "hub_orders_redriven",
            facts.orders_redriven,
            "Stalled chains the sweeper re-drove (no progress, no message in flight).",
        ),
    ):
        family = _counter(name, doc)
        family.add_metric([], value)
        yield family
    orders = _gauge("hub_orders", "Orders by current status.", ["status"])
    for status in sorted({*ORDER_STATUSES, *facts.orders_by_status}):
        orders.add_metric([status], facts.orders_by_status.get(status, 0))
    yield orders
    yield _latency(facts.latency_by_step)
    retries = _counter("hub_step_retries", "Retries scheduled, by step.", ["step"])
    for step in STEPS:
        retries.add_metric([step], facts.retries_by_step.get(step, 0))
    yield retries
    backlog = _gauge("hub_outbox_backlog", "Outbox rows not yet published to RabbitMQ.")
    backlog.add_metric([], facts.outbox_backlog)
    yield backlog
    age = _gauge(
        "hub_outbox_oldest_unsent_age_seconds", "Age of the oldest unpublished outbox row."
    )
    age.add_metric([], facts.outbox_oldest_age_seconds)
    yield age
    failures = _gauge(
        "hub_failures_open", "Open failure records, by step and kind.", ["step", "kind"]
    )
    known = {(step, kind) for step in STEPS for kind in FAILURE_KINDS}
    for step, kind in sorted(known | set(facts.failures_open)):
        failures.add_metric([step, kind], facts.failures_open.get((step, kind), 0))
    yield failures
    breakers = _gauge(
        "hub_breaker_state",
        "Breaker of a downstream system: 0 closed, 1 half-open, 2 open.",
        ["system"],
    )
    for system in sorted({*SYSTEM_OF_STEP.values(), *facts.breakers}):
        breakers.add_metric([system], BREAKER_VALUES.get(facts.breakers.get(system, "closed"), 0))
    yield breakers
    yield from _breaker_windows(facts)


def _breaker_windows(facts: DatabaseFacts) -> Iterator[GaugeMetricFamily]:
    systems = sorted({*SYSTEM_OF_STEP.values(), *facts.breaker_windows})
    quiet = BreakerWindow()
    windows = {system: facts.breaker_windows.get(system, quiet) for system in systems}
    readings: list[tuple[str, str, Callable[[BreakerWindow], float]]] = [
        (
            "hub_breaker_window_calls",
            "Calls a breaker counted in its window since the system's first recent failure.",
            lambda window: window.calls,
        ),
        (
            "hub_breaker_window_failure_rate",
            "Share of those calls that failed (0 to 1): the breaker opens past its threshold.",
            lambda window: window.failure_rate,
        ),
        (
            "hub_breaker_held_steps",
            "Steps held back in the broker since the breaker last opened.",
            lambda window: window.held,
        ),
    ]
    for name, help_text, read in readings:
        gauge = _gauge(name, help_text, ["system"])
        for system, window in windows.items():
            gauge.add_metric([system], read(window))
        yield gauge


def _latency(by_step: dict[str, Latency]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "hub_step_duration_seconds",
        "Duration of successful downstream calls, by step and system.",
        labels=["step", "system"],
    )
    empty = Latency(cumulative=(0,) * (len(LATENCY_BUCKETS) + 1), count=0, sum_seconds=0.0)
    bounds = [*(str(b) for b in LATENCY_BUCKETS), "+Inf"]
    for step in sorted({*STEPS, *by_step}):
        latency = by_step.get(step, empty)
        family.add_metric(
            [step, SYSTEM_OF_STEP.get(step, "unknown")],
            list(zip(bounds, latency.cumulative, strict=True)),
            latency.sum_seconds,
        )
    return family


def broker_metrics(facts: BrokerFacts) -> Iterator[Metric]:
    """Families read from RabbitMQ; a queue that does not exist has no sample."""
    queues = _gauge("hub_queue_messages", "Messages ready in a work queue.", ["queue"])
    for name, depth in sorted(facts.work_queues.items()):
        if depth is not None:
            queues.add_metric([name], depth)
    yield queues
    failed = _gauge("hub_failure_queue_messages", "Messages in the failure (dead letter) queue.")
    if facts.failure_queue is not None:
        failed.add_metric([], facts.failure_queue)
    yield failed
    delayed = _gauge(
        "hub_delayed_messages",
        "Retries waiting in Celery's celery_delayed_* queues (shared by every hub on the vhost).",
    )
    delayed.add_metric([], facts.delayed_messages)
    yield delayed


def snapshot_metrics(snapshot: Snapshot, *, seconds: float) -> Iterator[Metric]:
    """Every family of one snapshot, plus whether each service answered."""
    up = _gauge("hub_dependency_up", "1 if the service answered this scrape, else 0.", ["service"])
    up.add_metric(["postgresql"], 0 if isinstance(snapshot.database, ServiceDown) else 1)
    up.add_metric(["rabbitmq"], 0 if isinstance(snapshot.broker, ServiceDown) else 1)
    yield up
    took = _gauge("hub_snapshot_duration_seconds", "Time this scrape spent reading the services.")
    took.add_metric([], seconds)
    yield took
    if isinstance(snapshot.database, DatabaseFacts):
        yield from database_metrics(snapshot.database)
    if isinstance(snapshot.broker, BrokerFacts):
        yield from broker_metrics(snapshot.broker)


class HubCollector(Collector):
    """Takes a fresh snapshot on every scrape."""

    def __init__(self, take: Callable[[], Snapshot]) -> None:
        self._take = take

    def describe(self) -> list[Metric]:
        return []  # nothing to read at registration time

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        snapshot = self._take()
        yield from snapshot_metrics(snapshot, seconds=time.perf_counter() - started)


def metrics_registry(take: Callable[[], Snapshot]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(take))
    return registry


def install_metrics(api: FastAPI, settings: Settings) -> None:
    """Add ``GET /metrics`` to the API."""
    registry = metrics_registry(lambda: take_snapshot(settings))

    @api.get("/metrics", include_in_schema=False)
    def metrics() -> Response:  # sync: FastAPI runs it in a thread, the reads block
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
