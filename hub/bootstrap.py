"""The composition root: the one place where the real pieces are built and wired together.

Nothing is built at import time. Each piece is built from the settings on first use and kept
(``cache_clear`` starts over, as the tests and ``hub demo``'s switch to trial mode need).
Tests wire fakes of the ports instead of calling these.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from functools import cache
from typing import Any

from celery import Celery
from sqlalchemy import Engine

from adapters.tryton.ports import (
    Lease,
    TrytonFulfillment,
    TrytonInventory,
    TrytonInvoicing,
)
from adapters.tryton.rpc import TrytonConnection, TrytonRpc
from adapters.tryton.workflow import TrytonWorkflow
from hub.broker.celery_config import celery_config
from hub.broker.publisher import CeleryChainPublisher
from hub.core.ports.store import StepStore
from hub.core.registry import REGISTRY
from hub.core.steps import StepCall, compensation_key
from hub.core.system_settings import SystemSettings
from hub.db import hot_path
from hub.db.breaker_gate import SqlBreakerGate
from hub.db.compensation_store import SqlCompensationRecorder, SqlCompensationStore
from hub.db.engine import engine_for, get_engine, lease_engine
from hub.db.failures import SqlStepRecorder
from hub.db.hot_path import PostgresStepStore
from hub.db.lease import StepLease, no_lease
from hub.db.slot_wakes import SlotWakes
from hub.db.step_store import SqlStepStore
from hub.services.run_step import StepPorts
from hub.services.system_limits import NoLimits, SqlSystemLimiter, SystemLimiter
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


def adapter(settings: Settings, system: str) -> Any:
    """The adapter of ``system`` chosen by HUB_<SYSTEM>_ADAPTER (the registry lists each
    system's adapters as "module:factory"), built from the system's settings."""
    chosen = settings.system(system)
    module_name, _, attribute = REGISTRY.system(system).adapters[chosen.adapter].partition(":")
    factory: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        factory = getattr(factory, part)
    return factory(chosen)


def adapters(settings: Settings) -> dict[str, Any]:
    """Every system's adapter, by system name."""
    return {system: adapter(settings, system) for system in REGISTRY.systems}


def compensation_calls(settings: Settings) -> Mapping[str, StepCall]:
    """Each compensation's call, bound to its step's system's adapter (steps with none are
    passed by the compensation store before any call)."""
    built = adapters(settings)
    return {
        name: functools.partial(step.compensation, built[step.system])
        for name, step in REGISTRY.steps.items()
        if step.compensation is not None
    }


def step_calls(settings: Settings) -> Mapping[str, StepCall]:
    """Each step's call, bound to its system's adapter."""
    built = adapters(settings)
    return {
        name: functools.partial(step.call, built[step.system])
        for name, step in REGISTRY.steps.items()
    }


@cache
def tryton_workflow() -> TrytonWorkflow:
    """One JSON-RPC client (one session) of the Tryton in HUB_TRYTON__*, for every system."""
    tryton = get_settings().tryton
    connection = TrytonConnection(
        url=tryton.url,
        database=tryton.database,
        user=tryton.user,
        password=tryton.password.get_secret_value(),
        connect_timeout=tryton.connect_timeout,
        read_timeout=tryton.read_timeout,
    )
    return TrytonWorkflow(TrytonRpc(connection))


def step_lease(system: str) -> Lease:
    """The hub's lease on a step's calls (PostgreSQL); none on trial mode's SQLite."""
    settings = get_settings()
    engine = engine_for(settings.database_url)
    if not hot_path.serves(engine):
        return no_lease
    # Held for the whole call: a pool of its own, so the statements' pools stay bounded.
    leases = lease_engine(settings.database_url)
    return StepLease(leases, system=system, wait_s=settings.tryton.lease_wait)


# The registry's "tryton" adapters (HUB_<SYSTEM>_ADAPTER=tryton): their connection is
# HUB_TRYTON__*, so the system's own URL and token are not used.
def tryton_inventory(_: SystemSettings) -> TrytonInventory:
    return TrytonInventory(tryton_workflow(), step_lease("erp"))


def tryton_fulfillment(_: SystemSettings) -> TrytonFulfillment:
    return TrytonFulfillment(tryton_workflow(), step_lease("warehouse"))


def tryton_invoicing(_: SystemSettings) -> TrytonInvoicing:
    return TrytonInvoicing(tryton_workflow(), step_lease("accounting"))


def step_store(settings: Settings) -> StepStore:
    """One statement per move on PostgreSQL; the portable ORM store on SQLite (trial mode)."""
    window = settings.breaker.window
    engine = engine_for(settings.database_url)
    if hot_path.serves(engine):
        return PostgresStepStore(engine, breaker_window=window)
    return SqlStepStore(breaker_window=window)


def system_limiter(settings: Settings) -> SystemLimiter:
    """The per-system limits shared through PostgreSQL; none in trial mode (SQLite)."""
    engine = engine_for(settings.database_url)
    if not hot_path.serves(engine):
        return NoLimits()
    return SqlSystemLimiter(
        engine,
        limits_of=settings.limits_of,
        policy=settings.throttle,
        lease_of=settings.slot_lease,
        wakes=slot_wakes(engine),
    )


@cache
def slot_wakes(engine: Engine) -> SlotWakes:
    """One listener for given-back slots per engine (and process)."""
    return SlotWakes(engine)


@cache
def step_ports() -> StepPorts:
    """What a worker's step runs with: PostgreSQL's records and the real downstream systems."""
    settings = get_settings()
    return StepPorts(
        store=step_store(settings),
        calls=step_calls(settings),
        breaker=SqlBreakerGate(settings.breaker, get_engine()),
        recorder=SqlStepRecorder(),
        retry_policy=settings.retry_policy,
        limits=system_limiter(settings),
    )


@cache
def compensation_ports() -> StepPorts:
    """What a worker's compensation runs with: the same breaker, limits and retry policy as
    the step it undoes, its own records and calls, and the key ``<order>:<step>:compensate``."""
    settings = get_settings()
    return StepPorts(
        store=SqlCompensationStore(breaker_window=settings.breaker.window),
        calls=compensation_calls(settings),
        breaker=SqlBreakerGate(settings.breaker, get_engine()),
        recorder=SqlCompensationRecorder(),
        retry_policy=settings.retry_policy,
        limits=system_limiter(settings),
        key=compensation_key,
    )
