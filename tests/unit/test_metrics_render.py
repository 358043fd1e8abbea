"""A snapshot becomes Prometheus families named by the conventions; a service down says so."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from hub.core.registry import REGISTRY
from hub.core.statuses import FAILURE_KINDS
from hub.observability.health import ServiceDown
from hub.observability.metrics import metrics_registry
from hub.observability.snapshot.facts import (
    LATENCY_BUCKETS,
    BrokerFacts,
    DatabaseFacts,
    Latency,
    Snapshot,
)


def scrape(snapshot: Snapshot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics_registry(lambda: snapshot)).decode()
    samples: list[Sample] = [
        sample for family in text_string_to_metric_families(text) for sample in family.samples
    ]
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}


def snapshot(**parts: object) -> Snapshot:
    values: dict[str, object] = {
        "taken_at": datetime(2026, 1, 1, tzinfo=UTC),
        "queue_prefix": "hub",
        "database": DatabaseFacts(),
        "broker": BrokerFacts(),
    }
    values.update(parts)
    return Snapshot(**values)  # type: ignore[arg-type]


def test_database_facts_become_counters_gauges_and_a_latency_histogram() -> None:
    # Given 3 successful inventory calls: 2 within 50 ms, the third under a second.
    cumulative = tuple(0 if b < 0.05 else 2 if b < 1.0 else 3 for b in LATENCY_BUCKETS)
    facts = DatabaseFacts(
        orders_by_status={"completed": 7, "failed": 1},
        orders_received=9,
        orders_completed=7,
        orders_failed=2,
        retries_by_step={"inventory": 4},
        latency_by_step={"inventory": Latency((*cumulative, 3), count=3, sum_seconds=0.84)},
        outbox_backlog=5,
        outbox_oldest_age_seconds=12.5,
        failures_open={("invoice", "permanent"): 1},
        breakers={"erp": "open", "warehouse": "half_open"},
    )

    metrics = scrape(snapshot(database=facts))

    assert metrics[("hub_orders_received_total", ())] == 9
    assert metrics[("hub_orders_completed_total", ())] == 7
    assert metrics[("hub_orders_failed_total", ())] == 2
    assert metrics[("hub_orders", (("status", "completed"),))] == 7
    assert metrics[("hub_orders", (("status", "processing"),))] == 0
    assert metrics[("hub_step_retries_total", (("step", "inventory"),))] == 4
    assert metrics[("hub_step_retries_total", (("step", "invoice"),))] == 0
    inventory = (("step", "inventory"), ("system", "erp"))
    assert metrics[("hub_step_duration_seconds_bucket", (("le", "0.025"), *inventory))] == 0
    assert metrics[("hub_step_duration_seconds_bucket", (("le", "0.05"), *inventory))] == 2
    assert metrics[("hub_step_duration_seconds_bucket", (("le", "+Inf"), *inventory))] == 3
    assert metrics[("hub_step_duration_seconds_count", inventory)] == 3
    assert metrics[("hub_step_duration_seconds_sum", inventory)] == 0.84
    invoice = (("step", "invoice"), ("system", "accounting"))
    assert metrics[("hub_step_duration_seconds_count", invoice)] == 0
    assert metrics[("hub_outbox_backlog", ())] == 5
    assert metrics[("hub_outbox_oldest_unsent_age_seconds", ())] == 12.5
    assert metrics[("hub_failures_open", (("kind", "permanent"), ("step", "invoice")))] == 1
    assert metrics[("hub_failures_open", (("kind", "exhausted"), ("step", "invoice")))] == 0
    assert metrics[("hub_breaker_state", (("system", "erp"),))] == 2
    assert metrics[("hub_breaker_state", (("system", "warehouse"),))] == 1
    assert metrics[("hub_breaker_state", (("system", "accounting"),))] == 0


def test_broker_facts_become_queue_gauges_and_a_missing_queue_has_no_sample() -> None:
    facts = BrokerFacts(
        work_queues={"hub.inventory": 3, "hub.invoice": None},
        failure_queue=2,
        delayed_messages=6,
        delayed_queues=28,
    )

    metrics = scrape(snapshot(broker=facts))

    assert metrics[("hub_queue_messages", (("queue", "hub.inventory"),))] == 3
    assert ("hub_queue_messages", (("queue", "hub.invoice"),)) not in metrics
    assert metrics[("hub_failure_queue_messages", ())] == 2
    assert metrics[("hub_delayed_messages", ())] == 6
    assert metrics[("hub_dependency_up", (("service", "rabbitmq"),))] == 1


def test_a_service_down_is_a_zero_up_gauge_and_none_of_its_families() -> None:
    down = snapshot(
        database=ServiceDown("PostgreSQL", "db:5432/hub", "connection refused"),
        broker=ServiceDown("RabbitMQ", "amqp://guest:**@mq:5672//", "connection refused"),
    )

    metrics = scrape(down)

    assert metrics[("hub_dependency_up", (("service", "postgresql"),))] == 0
    assert metrics[("hub_dependency_up", (("service", "rabbitmq"),))] == 0
    names = {name for name, _ in metrics}
    assert names == {"hub_dependency_up", "hub_snapshot_duration_seconds"}


def test_every_failure_kind_is_seeded_at_zero_crashed_included() -> None:
    metrics = scrape(snapshot())

    for step in REGISTRY.step_names:
        for kind in FAILURE_KINDS:
            assert metrics[("hub_failures_open", (("kind", kind), ("step", step)))] == 0
    assert ("hub_failures_open", (("kind", "crashed"), ("step", "inventory"))) in metrics


def test_every_metric_family_is_in_the_docs_metrics_table() -> None:
    from pathlib import Path

    families = {
        family.name
        for family in text_string_to_metric_families(
            generate_latest(metrics_registry(lambda: snapshot())).decode()
        )
    }
    docs = (Path(__file__).resolve().parents[2] / "docs/operations.md").read_text()
    table = docs.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    # A counter's family is named without _total; the table names the samples.
    missing = sorted(
        name for name in families if f"`{name}" not in table and f"`{name}_total" not in table
    )
    assert not missing, f"metrics the docs' table does not name: {missing}"
