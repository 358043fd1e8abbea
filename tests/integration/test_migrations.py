"""The schema comes from Alembic alone: up from empty, down to empty, no drift from the models."""

from __future__ import annotations

from sqlalchemy import inspect

from alembic import command
from hub.db import migrate
from hub.db.engine import get_engine
from hub.settings import get_settings


def tables() -> set[str]:
    return set(inspect(get_engine()).get_table_names()) - {"alembic_version"}


def test_downgrade_to_empty_and_upgrade_back_without_drift() -> None:
    url = get_settings().database_url

    migrate.downgrade(url, "base")
    assert tables() == set()

    migrate.upgrade(url)
    assert {
        "orders",
        "order_lines",
        "outbox",
        "step_outcomes",
        "integration_events",
        "failures",
        "breakers",
    } <= tables()
    command.check(migrate.alembic_config(url))  # raises if models and migrations disagree
