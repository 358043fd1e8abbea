"""``hub status`` on real services, and with RabbitMQ or PostgreSQL gone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from hub.core.schemas import OrderIn
from hub.db.engine import unit_of_work
from hub.entrypoints.cli.main import cli
from hub.services.intake import accept_order
from hub.settings import get_settings
from tests.factories import order_payload

DEAD_BROKER = "amqp://guest:guest@127.0.0.1:5999//"
DEAD_DATABASE = "postgresql+psycopg2://postgres@127.0.0.1:5998/hub"


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Environment changes a test makes reach the settings; undone (and re-read) afterwards."""
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def run_status() -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["status"], terminal_width=160)
    return result.exit_code, result.output


def test_status_shows_the_orders_the_outbox_and_our_queues() -> None:
    with unit_of_work() as session:
        accept_order(
            session, OrderIn.model_validate(order_payload()), idempotency_key=None, sender="tests"
        )

    code, screen = run_status()

    prefix = get_settings().queue_prefix
    assert code == 0, screen
    assert "Outbox: 1 unsent" in screen
    assert f"{prefix}.inventory" in screen and "failure queue" in screen
    assert "celery_delayed_*" in screen
    assert "Workers online: 0 (none answered)" in screen


def test_status_with_rabbitmq_down_says_so_and_still_shows_the_database(
    fresh_settings: pytest.MonkeyPatch,
) -> None:
    fresh_settings.setenv("HUB_BROKER_URL", DEAD_BROKER)

    code, screen = run_status()

    assert code == 3
    assert "RabbitMQ unreachable at amqp://guest:**@127.0.0.1:5999//" in screen
    assert "start it with: rabbitmq-server" in screen
    assert "Orders" in screen and "Outbox:" in screen


def test_status_with_postgresql_down_says_so_and_still_shows_the_queues(
    fresh_settings: pytest.MonkeyPatch,
) -> None:
    fresh_settings.setenv("HUB_DATABASE_URL", DEAD_DATABASE)

    code, screen = run_status()

    assert code == 3
    assert "PostgreSQL unreachable at 127.0.0.1:5998/hub" in screen
    assert "RabbitMQ queues" in screen
