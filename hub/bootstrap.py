"""The composition root: the one place where the real pieces are built and wired together.

Nothing is built at import time. Each piece is built from the settings on first use and kept
(``cache_clear`` starts over, as the tests and ``hub demo``'s switch to trial mode need).
Tests wire fakes of the ports instead of calling these.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from celery import Celery

from adapters.accounting import AccountingClient
from adapters.clients import Downstream
from adapters.erp import ErpClient
from adapters.warehouse import WarehouseClient
from hub.broker.celery_config import celery_config
from hub.broker.publisher import CeleryChainPublisher
from hub.core.steps import StepStore
from hub.db import hot_path
from hub.db.engine import engine_for, get_engine
from hub.db.hot_path import PostgresStepStore
from hub.db.step_store import SqlStepStore
from hub.services.run_step import SqlBreakerGate, SqlStepRecorder, StepPorts
from hub.services.step_calls import step_calls
from hub.settings import Settings, get_settings

# Celery imports this module when a worker starts: it registers the step tasks.
TASKS_MODULE = "tasks.steps"


def create_celery_app(settings: Settings) -> Celery:
    """A Celery app configured from ``settings`` now (tests, benchmarks, other settings)."""
    app = Celery("hub", include=[TASKS_MODULE])
    app.conf.update(celery_config(settings))
    return app


def _configure_from_settings(sender: Celery, **_: Any) -> None:
    sender.config_from_object(celery_config(get_settings()))


@cache
def celery_app() -> Celery:
    """The hub's Celery app. Its configuration is read from the settings only when first
    needed (Celery's ``on_configure``), so importing ``tasks.app`` reads nothing."""
    app = Celery("hub", include=[TASKS_MODULE])
    app.on_configure.connect(_configure_from_settings, sender=app, weak=False)
    return app


def chain_publisher(settings: Settings | None = None) -> CeleryChainPublisher:
    """Publishes an order's chain on the hub's Celery app, waiting ``publish_timeout`` at most
    for the broker's confirm (of ``settings``, or of the hub's own settings)."""
    return CeleryChainPublisher(celery_app(), timeout=(settings or get_settings()).publish_timeout)


def downstream(settings: Settings) -> Downstream:
    """The ERP, warehouse and accounting clients, from HUB_*_URL, HUB_*_TOKEN and the timeouts."""
    connect, read = settings.http_connect_timeout, settings.http_read_timeout
    return Downstream(
        erp=ErpClient(
            base_url=settings.erp_url,
            token=settings.erp_token.get_secret_value(),
            connect_timeout=connect,
            read_timeout=read,
        ),
        warehouse=WarehouseClient(
            base_url=settings.warehouse_url,
            token=settings.warehouse_token.get_secret_value(),
            connect_timeout=connect,
            read_timeout=read,
        ),
        accounting=AccountingClient(
            base_url=settings.accounting_url,
            token=settings.accounting_token.get_secret_value(),
            connect_timeout=connect,
            read_timeout=read,
        ),
    )


def step_store(settings: Settings) -> StepStore:
    """One statement per move on PostgreSQL; the portable ORM store on SQLite (trial mode)."""
    window = settings.breaker.window
    engine = engine_for(settings.database_url)
    if hot_path.serves(engine):
        return PostgresStepStore(engine, breaker_window=window)
    return SqlStepStore(breaker_window=window)


@cache
def step_ports() -> StepPorts:
    """What a worker's step runs with: PostgreSQL's records and the real downstream systems."""
    settings = get_settings()
    return StepPorts(
        store=step_store(settings),
        calls=step_calls(downstream(settings)),
        breaker=SqlBreakerGate(settings.breaker, get_engine()),
        recorder=SqlStepRecorder(),
        retry_policy=settings.retry_policy,
    )
