"""``GET /metrics``: the hub in Prometheus text format, computed from a snapshot at scrape time.

The workers and the relay are other processes (on other hosts, in production), so nothing is
counted in this one: a scrape reads PostgreSQL and RabbitMQ (see ``hub.observability.snapshot``),
at most once per ``HUB_SNAPSHOT_MAX_AGE`` seconds however many scrape (``Cached``).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable, Iterator

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from hub.core.registry import REGISTRY
from hub.core.statuses import FAILURE_KINDS, ORDER_STATUSES
from hub.observability.cached import Cached, Pace
from hub.observability.health import ServiceDown, SlowQuery
from hub.observability.snapshot.facts import (
    LATENCY_BUCKETS,
    BreakerWindow,
    BrokerFacts,
    DatabaseFacts,
    Latency,
    Snapshot,
    SystemLimit,
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
    for name, value, doc in (
        (
            "hub_audit_rows_not_folded",
            facts.audit_not_folded,
            "Audit rows the relay has not folded into the counters yet.",
        ),
        (
            "hub_audit_rows_not_counted",
            facts.audit_not_counted,
            "Of those, rows past what one scrape reads: the counters are short by this many.",
        ),
    ):
        gauge = _gauge(name, doc)
        gauge.add_metric([], value)
        yield gauge
    orders = _gauge("hub_orders", "Orders by current status.", ["status"])
    for status in sorted({*ORDER_STATUSES, *facts.orders_by_status}):
        orders.add_metric([status], facts.orders_by_status.get(status, 0))
    yield orders
    yield _latency(facts.latency_by_step)
    retries = _counter("hub_step_retries", "Retries scheduled, by step.", ["step"])
    for step in REGISTRY.step_names:
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
    known = {(step, kind) for step in REGISTRY.step_names for kind in FAILURE_KINDS}
    for step, kind in sorted(known | set(facts.failures_open)):
        failures.add_metric([step, kind], facts.failures_open.get((step, kind), 0))
    yield failures
    breakers = _gauge(
        "hub_breaker_state",
        "Breaker of a downstream system: 0 closed, 1 half-open, 2 open.",
        ["system"],
    )
    for system in sorted({*REGISTRY.systems, *facts.breakers}):
        breakers.add_metric([system], BREAKER_VALUES.get(facts.breakers.get(system, "closed"), 0))
    yield breakers
    yield from _breaker_windows(facts)
    yield from _system_limits(facts)


def _system_limits(facts: DatabaseFacts) -> Iterator[Metric]:
    """A 429's cooling, the rate in force, slots held and steps waiting, per system."""
    systems = sorted({*REGISTRY.systems, *facts.limits})
    none = SystemLimit()
    limits = {system: facts.limits.get(system, none) for system in systems}
    readings: list[tuple[str, str, Callable[[SystemLimit], float]]] = [
        (
            "hub_system_cooling",
            "1 while a system cools after a 429 with Retry-After (no worker calls it), else 0.",
            lambda limit: 1 if limit.cooling else 0,
        ),
        (
            "hub_system_calls_in_flight",
            "Slots held by calls in flight to a system with HUB_<SYSTEM>_MAX_IN_FLIGHT.",
            lambda limit: limit.in_flight,
        ),
        (
            "hub_system_steps_waiting",
            "Steps deferred for a slot, a token or a cooling, waiting for their turn.",
            lambda limit: limit.waiting,
        ),
    ]
    for name, help_text, read in readings:
        gauge = _gauge(name, help_text, ["system"])
        for system, limit in limits.items():
            gauge.add_metric([system], read(limit))
        yield gauge
    rate = _gauge(
        "hub_system_rate_limit",
        "Calls per second allowed now (configured, or lowered after 429s); no sample: no limit.",
        ["system"],
    )
    for system, limit in limits.items():
        if limit.rate is not None:
            rate.add_metric([system], limit.rate)
    yield rate
    throttled = _counter("hub_system_throttled", "429s answered by a system.", ["system"])
    for system, limit in limits.items():
        throttled.add_metric([system], limit.throttled)
    yield throttled


def _breaker_windows(facts: DatabaseFacts) -> Iterator[GaugeMetricFamily]:
    systems = sorted({*REGISTRY.systems, *facts.breaker_windows})
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
            "Times a step was held back to wait in the broker since the breaker last opened "
            "(a step held through several rest periods counts each time; hub breakers: holds).",
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
    for step in sorted({*REGISTRY.step_names, *by_step}):
        latency = by_step.get(step, empty)
        family.add_metric(
            [step, (REGISTRY.system_of(step) if step in REGISTRY.steps else "unknown")],
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
    database = snapshot.database
    # A query past its statement timeout: PostgreSQL answered, and the scrape says which query.
    slow = database if isinstance(database, SlowQuery) else None
    up.add_metric(["postgresql"], 0 if isinstance(database, ServiceDown) and not slow else 1)
    up.add_metric(["rabbitmq"], 0 if isinstance(snapshot.broker, ServiceDown) else 1)
    yield up
    if slow is not None:
        family = _gauge(
            "hub_snapshot_slow_query",
            "1: this scrape's query ran past the snapshot's statement timeout (no figures).",
            ["query"],
        )
        family.add_metric([slow.query], 1)
        yield family
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


def install_metrics(api: FastAPI, settings: Settings) -> Cached[bytes]:
    """Add ``GET /metrics`` to the API: the text of a snapshot at most
    ``HUB_SNAPSHOT_MAX_AGE`` seconds old, behind ``HUB_METRICS_TOKEN`` when one is set."""
    registry = metrics_registry(lambda: take_snapshot(settings))
    page = Cached(lambda: generate_latest(registry), max_age=settings.snapshot_max_age)
    token = settings.metrics_token
    pace = Pace(settings.metrics_max_per_second)

    @api.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if token is not None and not _bearer_matches(request, token.get_secret_value()):
            return Response(
                "metrics need Authorization: Bearer <HUB_METRICS_TOKEN>\n",
                status_code=401,
                media_type="text/plain",
                headers={"WWW-Authenticate": 'Bearer realm="hub metrics"'},
            )
        await pace.wait()  # cheap is not enough: 32 clients in a loop would take the CPU
        return Response(await page.get(), media_type=CONTENT_TYPE_LATEST)

    return page


def _bearer_matches(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )
