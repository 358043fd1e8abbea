"""``GET /metrics`` reads real PostgreSQL and RabbitMQ at scrape time, and survives either down."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from hub.bootstrap import create_celery_app
from hub.broker.publisher import CeleryChainPublisher
from hub.core.schemas import OrderIn
from hub.db import audit
from hub.db.engine import unit_of_work
from hub.db.models import BreakerState, Failure
from hub.entrypoints.api import create_api
from hub.services.intake import accept_order
from hub.settings import get_settings
from tests.factories import order_payload

DEAD_BROKER = "amqp://guest:guest@127.0.0.1:5999//"  # nothing listens there
DEAD_DATABASE = "postgresql+psycopg2://postgres@127.0.0.1:5998/hub"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def new_order() -> uuid.UUID:
    with unit_of_work() as session:
        accepted = accept_order(
            session, OrderIn.model_validate(order_payload()), idempotency_key=None, sender="tests"
        )
    return accepted.order_id


def test_metrics_count_orders_latency_retries_outbox_failures_breakers_and_queues() -> None:
    # Given three orders (outbox rows unsent), one of them published to the inventory queue,
    # two successful ERP calls, a retry, an open failure and an open ERP breaker.
    first, second, third = new_order(), new_order(), new_order()
    settings = get_settings()
    CeleryChainPublisher(create_celery_app(settings), timeout=5).publish(
        first, ("inventory", "fulfillment", "invoice")
    )
    with unit_of_work() as session:
        for order_id, ms in ((first, 30.0), (second, 700.0)):
            audit.record(
                session, audit.STEP_SUCCEEDED, order_id=order_id, step="inventory", duration_ms=ms
            )
        audit.record(session, audit.RETRY_SCHEDULED, status="retry", order_id=third, step="invoice")
        audit.record(session, audit.COMPLETED, order_id=first)
        audit.record(session, audit.FAILED, status="error", order_id=third, step="invoice")
        session.add(Failure(order_id=third, step="invoice", error_kind="permanent", message="no"))
        session.add(BreakerState(system="erp", state="open", opened_at=datetime.now(UTC)))

    metrics = scrape(TestClient(create_api(settings)))

    assert metrics[("hub_dependency_up", (("service", "postgresql"),))] == 1
    assert metrics[("hub_dependency_up", (("service", "rabbitmq"),))] == 1
    assert metrics[("hub_orders_received_total", ())] == 3
    assert metrics[("hub_orders_completed_total", ())] == 1
    assert metrics[("hub_orders_failed_total", ())] == 1
    assert metrics[("hub_orders", (("status", "received"),))] == 3
    erp = (("step", "inventory"), ("system", "erp"))
    assert metrics[("hub_step_duration_seconds_bucket", (("le", "0.025"), *erp))] == 0
    assert metrics[("hub_step_duration_seconds_bucket", (("le", "0.05"), *erp))] == 1
    assert metrics[("hub_step_duration_seconds_bucket", (("le", "1.0"), *erp))] == 2
    assert metrics[("hub_step_duration_seconds_count", erp)] == 2
    assert round(metrics[("hub_step_duration_seconds_sum", erp)], 3) == 0.73
    assert metrics[("hub_step_retries_total", (("step", "invoice"),))] == 1
    assert metrics[("hub_outbox_backlog", ())] == 3
    assert metrics[("hub_outbox_oldest_unsent_age_seconds", ())] >= 0
    assert metrics[("hub_failures_open", (("kind", "permanent"), ("step", "invoice")))] == 1
    assert metrics[("hub_breaker_state", (("system", "erp"),))] == 2
    queue = f"{settings.queue_prefix}.inventory"
    assert metrics[("hub_queue_messages", (("queue", queue),))] == 1
    assert metrics[("hub_failure_queue_messages", ())] == 0


def test_metrics_answer_with_each_service_down_marked_zero() -> None:
    down = get_settings().model_copy(
        update={"broker_url": DEAD_BROKER, "database_url": DEAD_DATABASE}
    )

    metrics = scrape(TestClient(create_api(down)))

    assert metrics[("hub_dependency_up", (("service", "postgresql"),))] == 0
    assert metrics[("hub_dependency_up", (("service", "rabbitmq"),))] == 0
    assert ("hub_orders_received_total", ()) not in metrics
