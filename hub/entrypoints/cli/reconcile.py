"""``hub reconcile``: the hub's records against the sandbox ledgers; exit 1 on any disagreement."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.table import Table

from hub.entrypoints.cli.support import err, out, require_services, settings_or_exit
from hub.services.reconcile import DEFAULT_GRACE_SECONDS, LedgerUnavailable, check


def reconcile(
    order: Annotated[
        list[str] | None, typer.Option("--order", help="check only this order id (repeatable)")
    ] = None,
    settled: Annotated[
        bool,
        typer.Option(
            "--settled",
            help="also require every order completed or failed with an open failure, "
            "and no outbox row unsent (for a quiet system)",
        ),
    ] = False,
    grace: Annotated[
        float,
        typer.Option(help="seconds an effect of a step still under way counts as in flight"),
    ] = DEFAULT_GRACE_SECONDS,
) -> None:
    """Compare the hub's records with the sandbox ledgers; exit 1 on any disagreement."""
    settings = settings_or_exit()
    require_services(settings, rabbitmq=False)
    try:
        only = {str(uuid.UUID(value)) for value in order} if order else None
    except ValueError:
        raise typer.BadParameter("not an order id", param_hint="--order") from None
    try:
        found, counted = check(settings, only=only, settled=settled, grace=grace)
    except LedgerUnavailable as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    checked = (
        f"{counted['orders']} orders, {counted['steps_succeeded']} steps succeeded, "
        f"{counted['effects']} downstream effects"
    )
    if not found:
        out.print(f"[green]records and downstream effects agree[/green]: {checked}")
        return
    table = Table("order", "step", "problem", "detail", title=f"{len(found)} disagreement(s)")
    for item in found:
        table.add_row(item.order_id, item.step, item.problem, item.detail)
    out.print(table)
    err.print(f"[red]{len(found)} disagreement(s)[/red] in {checked}")
    raise typer.Exit(1)


def register(cli: typer.Typer) -> None:
    cli.command("reconcile")(reconcile)
