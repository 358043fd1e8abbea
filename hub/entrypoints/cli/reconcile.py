"""``hub reconcile``: the hub's records against the sandbox ledgers; exit 1 on any disagreement.

It says what it could not check (steps older than a restarted sandbox's ledger) instead of
calling them disagreements, and why each disagreement it found happens.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from hub.db.engine import unit_of_work
from hub.entrypoints.cli.plain import plain
from hub.entrypoints.cli.support import err, out, require_services, settings_or_exit
from hub.services.orders import AmbiguousOrder
from hub.services.reconcile import (
    DEFAULT_GRACE_SECONDS,
    WHY,
    LedgerUnavailable,
    Report,
    UnknownOrder,
    report,
    resolve_orders,
)

# A ledger that cannot be read is a service not reachable, as elsewhere (exit 3); 2 is for bad
# settings and bad options.
LEDGER_UNREADABLE = 3


def reconcile(
    order: Annotated[
        list[str] | None,
        typer.Option("--order", help="check only this order: order id or external id (repeatable)"),
    ] = None,
    at_rest: Annotated[
        bool,
        typer.Option(
            "--at-rest",
            "--settled",
            help="also require every order at rest: completed, cancelled or closed, or failed "
            "with its failure open (waiting for an operator) or discarded; and no outbox row "
            "unsent (for a quiet system). --settled is the old name",
        ),
    ] = False,
    grace: Annotated[
        float,
        typer.Option(help="seconds an effect of a step still under way counts as in flight"),
    ] = DEFAULT_GRACE_SECONDS,
) -> None:
    """Compare the hub's records with the sandbox ledgers; exit 1 on any disagreement, 3 if a
    ledger cannot be read."""
    settings = settings_or_exit()
    require_services(settings, rabbitmq=False)
    only = None
    if order:
        try:
            with unit_of_work() as session:
                only = resolve_orders(session, order)
        except (UnknownOrder, AmbiguousOrder) as exc:
            raise typer.BadParameter(str(exc), param_hint="--order") from None
    try:
        done = report(settings, only=only, at_rest=at_rest, grace=grace)
    except LedgerUnavailable as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(LEDGER_UNREADABLE) from None
    print_report(done)
    if done.found:
        raise typer.Exit(1)


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def print_report(done: Report) -> None:
    counted = done.counted
    checked = (
        f"{counted['orders']} orders, {counted['steps_succeeded']} steps succeeded, "
        f"{counted['effects']} downstream effects, {counted['compensations']} compensations"
    )
    for skipped in done.not_checked:
        out.print(
            f"[yellow]not checked[/yellow]: {skipped.count} {skipped.step} step(s) succeeded "
            f"before that system's sandbox started at {_clock(skipped.ledger_started)}; "
            "a sandbox keeps its ledger in memory, so a restart forgets what it applied before"
        )
    if done.rest is not None:
        rest = done.rest
        out.print(
            f"at rest: {rest.completed} completed, {rest.cancelled} cancelled, {rest.closed} "
            f"closed, {rest.waiting} waiting for a decision (an open failure: replay, cancel "
            f"or close it), {rest.discarded} failed and discarded"
        )
    if not done.found:
        scope = " for everything it could check" if done.not_checked else ""
        out.print(f"[green]records and downstream effects agree{scope}[/green]: {checked}")
        return
    table = Table("order", "step", "problem", "detail", title=f"{len(done.found)} disagreement(s)")
    for item in done.found:
        table.add_row(item.order_id, item.step, item.problem, plain(item.detail))
    out.print(table)
    for problem in sorted({item.problem for item in done.found}):
        out.print(f"[bold]{problem}[/bold]: {WHY.get(problem, '')}")
    err.print(f"[red]{len(done.found)} disagreement(s)[/red] in {checked}")


def register(cli: typer.Typer) -> None:
    cli.command("reconcile")(reconcile)
