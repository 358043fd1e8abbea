"""``hub status``: one screen of where the hub stands, once or refreshed with ``--watch``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC
from typing import Annotated

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from hub import bootstrap
from hub.core.registry import REGISTRY
from hub.core.statuses import ORDER_STATUSES
from hub.entrypoints.cli.support import err, out, settings_or_exit, stop_on_signals
from hub.observability.health import ServiceDown
from hub.observability.snapshot.facts import BrokerFacts, DatabaseFacts, Snapshot, SystemLimit
from hub.observability.snapshot.take import take_snapshot

_BREAKER_STYLE = {"closed": "green", "half_open": "yellow", "open": "bold red"}


def _down(part: ServiceDown) -> Text:
    text = Text(part.headline, style="bold red")
    if part.hint:
        text.append(f"\n  {part.hint}", style="red")
    return text


def _orders_and_outbox(facts: DatabaseFacts) -> RenderableType:
    orders = Table(title="Orders", title_justify="left")
    statuses = sorted({*ORDER_STATUSES, *facts.orders_by_status}, key=_status_order)
    for status in statuses:
        orders.add_column(status, justify="right")
    orders.add_row(*(str(facts.orders_by_status.get(s, 0)) for s in statuses))
    lag = (
        Text(
            f"Outbox: {facts.outbox_backlog} unsent, the oldest "
            f"{facts.outbox_oldest_age_seconds:.1f}s old",
            style="yellow",
        )
        if facts.outbox_backlog
        else Text("Outbox: nothing waiting to be published", style="green")
    )
    if not facts.audit_not_counted:
        return Group(orders, lag)
    # The relay folds the audit trail; until it catches up the counters are short.
    behind = Text(
        f"Audit trail: {facts.audit_not_folded} rows not yet folded into the counters, "
        f"{facts.audit_not_counted} of them not counted here yet (is the relay running?)",
        style="yellow",
    )
    return Group(orders, lag, behind)


def _status_order(status: str) -> int:
    return ORDER_STATUSES.index(status) if status in ORDER_STATUSES else len(ORDER_STATUSES)


def _failures(facts: DatabaseFacts) -> RenderableType:
    failures = Table("step", "error kind", "open", title="Open failures", title_justify="left")
    for (step, kind), count in sorted(facts.failures_open.items()):
        failures.add_row(step, kind, str(count), style="red")
    if not facts.failures_open:
        failures.add_row("-", "-", "0")
    return failures


def _breakers(facts: DatabaseFacts) -> RenderableType:
    breakers = Table("system", "breaker", "limits", title="Breakers", title_justify="left")
    for system in sorted({*REGISTRY.systems, *facts.breakers, *facts.limits}):
        state = facts.breakers.get(system, "closed")
        limit = facts.limits.get(system)
        breakers.add_row(
            system,
            Text(state, style=_BREAKER_STYLE.get(state, "")),
            _limit_text(limit) if limit is not None else Text(""),
        )
    return breakers


def _limit_text(limit: SystemLimit) -> Text:
    """A 429's cooling (in red), the rate in force, slots held and steps waiting."""
    parts = []
    if limit.cooling and limit.cooling_until is not None:
        until = limit.cooling_until.astimezone(UTC)
        parts.append(Text(f"cooling (429) until {until:%H:%M:%S} UTC", style="bold red"))
    if limit.rate is not None:
        parts.append(Text(f"{limit.rate:.3g} calls/s"))
    if limit.in_flight:
        parts.append(Text(f"{limit.in_flight} in flight"))
    if limit.waiting:
        parts.append(Text(f"{limit.waiting} waiting"))
    return Text(", ").join(parts)


def _queues(facts: BrokerFacts) -> RenderableType:
    table = Table("queue", "messages ready", title="RabbitMQ queues", title_justify="left")
    for name, depth in sorted(facts.work_queues.items()):
        table.add_row(name, "missing" if depth is None else str(depth))
    failure = facts.failure_queue
    table.add_row("failure queue", "missing" if failure is None else str(failure))
    table.add_row(
        f"celery_delayed_* ({facts.delayed_queues}, whole vhost)",
        str(facts.delayed_messages),
    )
    return table


def _workers(workers: tuple[str, ...] | ServiceDown | None) -> RenderableType:
    if workers is None:
        return Text("Workers: not asked")
    if isinstance(workers, ServiceDown):
        return Text(f"Workers: unknown ({workers.headline})", style="bold red")
    style = "green" if workers else "bold red"
    names = ", ".join(workers) if workers else "none answered"
    return Text(f"Workers online: {len(workers)} ({names})", style=style)


def render(snapshot: Snapshot) -> RenderableType:
    """The whole screen; a service that is down gets a line saying so instead of its tables."""
    parts: list[RenderableType] = [
        Text(
            f"hub status  (queue prefix {snapshot.queue_prefix}, "
            f"{snapshot.taken_at:%Y-%m-%d %H:%M:%S} UTC)",
            style="bold",
        )
    ]
    # Queues, failures and breakers side by side, so the whole thing fits one screen.
    side_by_side: list[RenderableType] = []
    if isinstance(snapshot.database, ServiceDown):
        parts.append(_down(snapshot.database))
    else:
        parts.append(_orders_and_outbox(snapshot.database))
    if isinstance(snapshot.broker, ServiceDown):
        parts.append(_down(snapshot.broker))
    else:
        side_by_side.append(_queues(snapshot.broker))
    if isinstance(snapshot.database, DatabaseFacts):
        side_by_side += [_failures(snapshot.database), _breakers(snapshot.database)]
    row = Table.grid(padding=(0, 3))
    row.add_row(*side_by_side)
    parts += [row, _workers(snapshot.workers)]
    return Group(*parts)


def any_down(snapshot: Snapshot) -> bool:
    parts = (snapshot.database, snapshot.broker, snapshot.workers)
    return any(isinstance(part, ServiceDown) for part in parts)


def watch(
    take: Callable[[], Snapshot],
    *,
    console: Console,
    interval: float,
    stop: threading.Event,
) -> int:
    """Redraw the screen every ``interval`` seconds until ``stop`` is set; return the redraws."""
    redraws = 1
    with Live(render(take()), console=console, auto_refresh=False) as live:
        while not stop.wait(interval):
            live.update(render(take()), refresh=True)
            redraws += 1
    return redraws


def status(
    watch_: Annotated[
        bool, typer.Option("--watch", help="redraw every --interval seconds until Ctrl-C")
    ] = False,
    interval: Annotated[float, typer.Option(min=0.5, help="seconds between redraws")] = 2.0,
) -> None:
    """One screen: orders, outbox lag, queues, failures, breakers, workers online."""

    settings = settings_or_exit()
    if settings.trial:
        # Its numbers come from PostgreSQL's SQL and RabbitMQ's queues, which trial mode lacks.
        err.print(
            "[red]hub status needs PostgreSQL and RabbitMQ; trial mode (HUB_TRIAL) has neither. "
            "Use hub timeline, hub failures list or hub breakers there.[/red]"
        )
        raise typer.Exit(2)

    celery_app = bootstrap.celery_app()

    def take() -> Snapshot:
        return take_snapshot(settings, workers=celery_app)

    if watch_:
        watch(take, console=out, interval=interval, stop=stop_on_signals())
        return
    snapshot = take()
    out.print(render(snapshot))
    if any_down(snapshot):
        raise typer.Exit(3)  # same code as any command that finds a service down


def register(cli: typer.Typer) -> None:
    cli.command("status")(status)
