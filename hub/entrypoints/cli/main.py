"""The ``hub`` command: what operators type, at any hour."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import Annotated

import celery.apps.worker
import typer
import uvicorn
from kombu.connection import Connection

from hub import bootstrap
from hub.broker.topology import Topology
from hub.core.registry import REGISTRY
from hub.db import migrate as migrations
from hub.db.engine import unit_of_work
from hub.entrypoints.cli import doctor, keys, operators, orders, prune, reconcile
from hub.entrypoints.cli import failures as cli_failures
from hub.entrypoints.cli import flower as flower_commands
from hub.entrypoints.cli import status as status_commands
from hub.entrypoints.cli.support import (
    err,
    out,
    require_services,
    settings_or_exit,
    stop_on_signals,
    warn_if_broker_down,
)
from hub.entrypoints.cli.timeline import print_timeline
from hub.entrypoints.relay import run_relay
from hub.entrypoints.relay_chores import relay_chores
from hub.observability.health import rabbitmq_problem
from hub.observability.logs import configure_logging, json_notice
from hub.services import dead_letters
from hub.services.orders import AmbiguousOrder, find_order, order_view
from hub.settings import Settings
from tasks.app import app as celery_app

# How often a relay started without RabbitMQ looks for it again.
BROKER_WAIT = 2.0

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Order integration hub.")


@cli.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head",
    down: Annotated[bool, typer.Option("--down", help="downgrade to REVISION")] = False,
) -> None:
    """Create the database if needed and bring its schema to REVISION."""

    settings = settings_or_exit()
    with contextlib.suppress(Exception):  # a missing database is made; other problems named below
        migrations.ensure_database(settings.database_url)
    require_services(settings, rabbitmq=False)
    if down:
        migrations.downgrade(settings.database_url, revision if revision != "head" else "base")
    else:
        migrations.upgrade(settings.database_url, revision)
    out.print(f"database schema at {'base' if down and revision == 'head' else revision}")


@cli.command()
def api() -> None:
    """Serve the intake API (HUB_API_HOST:HUB_API_PORT)."""

    settings = settings_or_exit()
    # Only PostgreSQL: intake answers 202 through a broker outage (orders wait in the outbox
    # for the relay), so an API restarted or deployed while RabbitMQ is down must start too.
    warn_if_broker_down(settings, "orders wait in the outbox until it is back")
    require_services(settings, rabbitmq=False)
    configure_logging("api", fmt=settings.log_format, level=settings.log_level)
    logging.getLogger("hub.api").info(
        "intake API listening on http://%s:%d (%d processes); Ctrl-C stops it",
        settings.api_host,
        settings.api_port,
        settings.api_processes,
    )
    uvicorn.run(
        # A factory by name: with several processes, uvicorn builds the app in each of them.
        "hub.entrypoints.api:served_api",
        factory=True,
        workers=settings.api_processes,
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        log_config=None,  # uvicorn's lines go through our logging, not its own formatter
        access_log=False,
    )


@cli.command()
def relay() -> None:
    """Publish outbox rows the intake's fast path did not, until stopped."""
    settings = settings_or_exit()
    # Started during a broker outage it waits for RabbitMQ, then publishes the backlog.
    warn_if_broker_down(settings, "the relay waits for it, then publishes the outbox")
    require_services(settings, rabbitmq=False)

    configure_logging("relay", fmt=settings.log_format, level=settings.log_level)
    stop = stop_on_signals()
    topology = Topology.for_settings(settings)
    logging.getLogger("hub.relay").info(
        "relay running (batch %d); Ctrl-C stops it", settings.relay_batch_size
    )
    with bootstrap.celery_app().connection_for_write() as connection:
        if not declare_when_broker_answers(settings, topology, connection, stop):
            return

        def drain_failures() -> int:
            if topology.plain:  # trial mode's broker has no dead-lettering, so nothing to drain
                return 0
            return dead_letters.drain(connection, topology.failure_queue())

        run_relay(
            bootstrap.chain_publisher(settings),
            batch_size=settings.relay_batch_size,
            interval=settings.relay_interval,
            grace=settings.relay_grace,
            stop=stop,
            drain_failures=drain_failures,
            chores=relay_chores(settings, topology, connection),
        )


def declare_when_broker_answers(
    settings: Settings, topology: Topology, connection: Connection, stop: threading.Event
) -> bool:
    """Declare the hub's exchanges and queues once RabbitMQ answers (False if stopped first):
    a relay started during a broker outage waits, then publishes the backlog."""
    log = logging.getLogger("hub.relay")
    waiting = False
    while not stop.is_set():
        problem: object = rabbitmq_problem(settings)
        if problem is None:
            try:
                topology.declare(connection)
            except Exception as exc:  # the broker went away between the check and the declare
                problem = exc
            else:
                if waiting:
                    log.info("RabbitMQ answers again: publishing the outbox")
                return True
        if not waiting:
            log.warning("%s; the relay waits for it (orders wait in the outbox)", problem)
            waiting = True
        stop.wait(BROKER_WAIT)
    return False


# Steps spend their time waiting on downstream systems, so a worker runs them on threads:
# 32 calls in flight cost one process (~70 MB) instead of 32. See docs/performance.md.
DEFAULT_CONCURRENCY = {"threads": 32, "prefork": 2}


@cli.command()
def worker(
    pool: Annotated[
        str, typer.Option(help="threads (many calls in flight) or prefork (processes)")
    ] = "threads",
    concurrency: Annotated[
        int | None,
        typer.Option(help="steps at once: threads (default 32) or processes (default 2)"),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="node name, unique per host (default worker-<pid>)")
    ] = None,
) -> None:
    """A Celery worker consuming the three step queues."""
    if pool not in DEFAULT_CONCURRENCY:
        choices = ", ".join(DEFAULT_CONCURRENCY)
        err.print(f"[red]--pool must be one of {choices}, not {pool!r}[/red]")
        raise typer.Exit(2)
    if concurrency is not None and concurrency < 1:
        err.print(f"[red]--concurrency must be at least 1, not {concurrency}[/red]")
        raise typer.Exit(2)
    settings = settings_or_exit()
    require_services(settings)

    json_logs = configure_logging("worker", fmt=settings.log_format, level=settings.log_level)
    if json_logs:  # Celery's shutdown notices bypass logging: one JSON line each, too
        celery.apps.worker.safe_say = json_notice("worker", fd=sys.stdout.fileno())
    queues = ",".join(
        Topology(settings.queue_prefix).queue_name(step) for step in REGISTRY.step_names
    )
    celery_app.worker_main(
        argv=[
            *(["--quiet"] if json_logs else []),  # no ASCII-art banner among JSON lines
            "worker",
            "-Q",
            queues,
            "--pool",
            pool,
            "--concurrency",
            str(concurrency or DEFAULT_CONCURRENCY[pool]),
            "--hostname",
            # Two workers of one name on a host fight over one exclusive pidbox queue and the
            # second dies (ResourceLocked): the pid makes the default unique.
            f"{name or f'worker-{os.getpid()}'}@%h",
            "--loglevel",
            settings.log_level,
            "--without-gossip",
            "--without-mingle",
        ]
    )


@cli.command()
def timeline(ref: Annotated[str, typer.Argument(help="order id or external id")]) -> None:
    """Show where an order is and how it got there."""

    settings = settings_or_exit()
    require_services(settings, rabbitmq=False)
    with unit_of_work() as session:
        try:  # operators see every sender's orders
            order = find_order(session, ref, sender=None)
        except AmbiguousOrder as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        if order is None:
            err.print(f"[red]no order with id or external id {ref!r}[/red]")
            raise typer.Exit(1)
        view = order_view(session, order)
    print_timeline(view)


@cli.command()
def check() -> None:
    """Say whether the database and the broker answer where the settings point."""
    settings = settings_or_exit()
    require_services(settings)
    if settings.trial:  # no server at all: say what was checked, not what was not
        out.print(
            "trial mode: the SQLite database and the filesystem broker's folders are there "
            f"({settings.database_url}, {settings.broker_url})."
        )
        return
    out.print("PostgreSQL and RabbitMQ answer.")


# Commands that live in modules of their own register here, one line each.
cli_failures.register(cli)
cli.add_typer(keys.keys_cli, name="keys")
cli.add_typer(orders.orders_cli, name="orders")
cli.add_typer(operators.operators_cli, name="operators")
flower_commands.register(cli)
status_commands.register(cli)
reconcile.register(cli)
prune.register(cli)
doctor.register(cli)
