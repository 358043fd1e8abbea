"""The ``hub`` command: what operators type, at any hour."""

from __future__ import annotations

import contextlib
import logging
from typing import Annotated
from urllib.parse import urlsplit

import typer
import uvicorn

from adapters.sandbox import run_sandbox
from hub import bootstrap
from hub.broker.topology import Topology
from hub.core.pipeline import STEPS
from hub.db import migrate as migrations
from hub.db.engine import unit_of_work
from hub.entrypoints.cli import doctor, keys, prune, reconcile
from hub.entrypoints.cli import failures as cli_failures
from hub.entrypoints.cli import flower as flower_commands
from hub.entrypoints.cli import status as status_commands
from hub.entrypoints.cli.support import (
    err,
    out,
    require_services,
    settings_or_exit,
    stop_on_signals,
)
from hub.entrypoints.cli.timeline import print_timeline
from hub.entrypoints.relay import run_relay
from hub.entrypoints.relay_chores import relay_chores
from hub.observability.logs import configure_logging
from hub.services import dead_letters
from hub.services.orders import AmbiguousOrder, find_order, order_view
from tasks.app import app as celery_app

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
    require_services(settings)
    configure_logging("api", fmt=settings.log_format, level=settings.log_level)
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
    require_services(settings)

    configure_logging("relay", fmt=settings.log_format, level=settings.log_level)
    stop = stop_on_signals()
    topology = Topology.for_settings(settings)
    logging.getLogger("hub.relay").info(
        "relay running (batch %d); Ctrl-C stops it", settings.relay_batch_size
    )
    with bootstrap.celery_app().connection_for_write() as connection:
        topology.declare(connection)

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


@cli.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="worker processes")] = 2,
    name: Annotated[str, typer.Option(help="node name")] = "worker",
) -> None:
    """A Celery worker consuming the three step queues."""
    settings = settings_or_exit()
    require_services(settings)

    json_logs = configure_logging("worker", fmt=settings.log_format, level=settings.log_level)
    queues = ",".join(Topology(settings.queue_prefix).queue_name(step) for step in STEPS)
    celery_app.worker_main(
        argv=[
            *(["--quiet"] if json_logs else []),  # no ASCII-art banner among JSON lines
            "worker",
            "-Q",
            queues,
            "--concurrency",
            str(concurrency),
            "--hostname",
            f"{name}@%h",
            "--loglevel",
            settings.log_level,
            "--without-gossip",
            "--without-mingle",
        ]
    )


@cli.command()
def sandbox() -> None:
    """Run the sandbox ERP, warehouse and accounting servers on the configured URLs."""

    settings = settings_or_exit()
    ports = [
        urlsplit(u).port or 80
        for u in (settings.erp_url, settings.warehouse_url, settings.accounting_url)
    ]
    run_sandbox(
        host=urlsplit(settings.erp_url).hostname or "127.0.0.1",
        erp_port=ports[0],
        warehouse_port=ports[1],
        accounting_port=ports[2],
        erp_token=settings.erp_token.get_secret_value(),
        warehouse_token=settings.warehouse_token.get_secret_value(),
        accounting_token=settings.accounting_token.get_secret_value(),
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
    """Say whether PostgreSQL and RabbitMQ answer where the settings point."""
    settings = settings_or_exit()
    require_services(settings)
    out.print("PostgreSQL and RabbitMQ answer.")


# Commands that live in modules of their own register here, one line each.
cli_failures.register(cli)
cli.add_typer(keys.keys_cli, name="keys")
flower_commands.register(cli)
status_commands.register(cli)
reconcile.register(cli)
prune.register(cli)
doctor.register(cli)
