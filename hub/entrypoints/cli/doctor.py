"""``hub doctor``: the mistakes operators make with the broker and the processes, each with
its fix; exit 1 if any is found."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from kombu.connection import Connection
from rich.markup import escape

from hub import bootstrap
from hub.broker.topology import Topology
from hub.entrypoints.cli.support import err, out, require_services, settings_or_exit
from hub.observability import doctor
from hub.observability.identity import COMMAND, identity
from hub.observability.tryton_check import check_tryton, tryton_systems
from hub.settings import Settings


def ask_workers(settings: Settings, timeout: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every worker on the vhost: the queues it consumes, and its identity (ours only)."""
    control = bootstrap.celery_app().control
    queues: dict[str, Any] = {}
    for reply in control.broadcast("active_queues", reply=True, timeout=timeout) or []:
        queues.update(reply)
    ours = doctor.our_queue_names(Topology.for_settings(settings))
    mine = {
        node for node, consumed in queues.items() if any(q.get("name") in ours for q in consumed)
    }
    identities: dict[str, Any] = {}
    for reply in control.broadcast(COMMAND, reply=True, timeout=timeout) or []:
        identities.update({node: answer for node, answer in reply.items() if node in mine})
    identities.update({node: None for node in mine if node not in identities})
    return queues, identities


def run_checks(settings: Settings, *, window: float, timeout: float) -> list[doctor.Problem]:
    topology = Topology.for_settings(settings)
    found = doctor.check_vhost(settings.broker_url)
    with Connection(settings.broker_url, connect_timeout=5) as connection:
        found += doctor.check_topology(connection, topology)
        found += doctor.check_stranded(connection, topology, window=window)
    queues, identities = ask_workers(settings, timeout)
    found += doctor.check_neighbours(queues, doctor.our_queue_names(topology))
    found += doctor.check_processes(identity(settings), identities, workers_seen=bool(identities))
    found += check_tryton(settings)
    return found


def doctor_command(
    window: Annotated[
        float, typer.Option(help="seconds to watch celery_delayed_0 for a stuck message")
    ] = doctor.STRANDED_WINDOW,
    timeout: Annotated[float, typer.Option(help="seconds to wait for workers' answers")] = 2.0,
) -> None:
    """Check the vhost, queues, delayed retries and processes; a fix for each problem."""
    settings = settings_or_exit()
    if settings.trial:
        err.print("[red]hub doctor checks RabbitMQ; trial mode (HUB_TRIAL) has none.[/red]")
        raise typer.Exit(2)
    require_services(settings)
    found = run_checks(settings, window=window, timeout=timeout)
    for advice in (p for p in found if p.severity == "advice"):
        out.print(
            f"[yellow]{advice.check} (advice)[/yellow]: {escape(advice.found)}\n"
            f"  [bold]before production[/bold]: {escape(advice.fix)}"
        )
    problems = [p for p in found if p.severity == "problem"]
    if not problems:
        also = ", Tryton" if tryton_systems(settings) else ""
        out.print(f"[green]no problem found[/green]: vhost, queues, delayed retries, workers{also}")
        return
    for problem in problems:
        out.print(
            f"[red]{problem.check}[/red]: {escape(problem.found)}\n"
            f"  [bold]fix[/bold]: {escape(problem.fix)}"
        )
    err.print(f"[red]{len(problems)} problem(s)[/red]")
    raise typer.Exit(1)


def register(cli: typer.Typer) -> None:
    cli.command("doctor")(doctor_command)
