"""docker-compose.yml brings up the stack the hub expects, where its default settings look.

No Docker engine runs on our machines, so the file is checked as data: images, health checks,
ports, and the credentials behind the hub's default URLs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

from hub.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    # The default stack; services of a profile (`cluster`) are checked in test_compose_cluster.
    found: dict[str, Any] = {
        name: service
        for name, service in document["services"].items()
        if not service.get("profiles")
    }
    assert set(found) == {"rabbitmq", "postgres"}
    assert set(document["volumes"]) >= {"rabbitmq-data", "postgres-data"}
    return found


def defaults() -> Settings:
    return Settings.model_construct()  # the defaults, whatever this machine's environment says


def test_rabbitmq_is_3_10_with_management_and_a_health_check(services: dict[str, Any]) -> None:
    rabbit = services["rabbitmq"]
    assert rabbit["image"] == "rabbitmq:3.10-management"
    assert rabbit["healthcheck"]["test"] == ["CMD", "rabbitmq-diagnostics", "-q", "ping"]
    assert "127.0.0.1:5672:5672" in rabbit["ports"] and "127.0.0.1:15672:15672" in rabbit["ports"]
    broker = urlsplit(defaults().broker_url)
    env = rabbit["environment"]
    assert (env["RABBITMQ_DEFAULT_USER"], env["RABBITMQ_DEFAULT_PASS"]) == (
        broker.username,
        broker.password,
    )
    assert f"{broker.hostname}:{broker.port}:5672" in rabbit["ports"]


def test_postgres_is_15_with_a_health_check_and_the_hubs_database(
    services: dict[str, Any],
) -> None:
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:15"
    check = postgres["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL" and check[1].startswith("pg_isready")
    database = make_url(defaults().database_url)
    env = postgres["environment"]
    assert env["POSTGRES_USER"] == database.username
    assert env["POSTGRES_DB"] == database.database
    # The default URL has no password: local trust, on a port only this host reaches.
    assert database.password is None and env["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert f"{database.host}:{database.port}:5432" in postgres["ports"]


def test_every_health_check_is_retried_long_enough_to_start(services: dict[str, Any]) -> None:
    for name, service in services.items():
        check = service["healthcheck"]
        assert {"interval", "timeout", "retries"} <= set(check), name
        assert int(check["retries"]) >= 5, name
