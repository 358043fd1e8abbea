"""``hub prune``: delete settled history older than a cutoff, in batches; ``--dry-run`` first."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

import typer

from hub.entrypoints.cli.support import out, require_services, settings_or_exit
from hub.services.prune import BATCH, prune

AGE = re.compile(r"^(\d+)([hdw])$")
UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    match = AGE.match(text.strip())
    if not match:
        raise typer.BadParameter(
            f"{text!r} is not an age like 90d, 12w or 48h", param_hint="--older-than"
        )
    amount, unit = match.groups()
    return timedelta(**{UNITS[unit]: int(amount)})


def prune_command(
    older_than: Annotated[
        str, typer.Option("--older-than", help="age of what goes: 90d, 12w, 48h")
    ] = "90d",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="count what would go, delete nothing")
    ] = False,
    batch: Annotated[int, typer.Option(min=1, help="rows per transaction")] = BATCH,
) -> None:
    """Delete settled orders' audit rows, sent outbox rows and resolved failures older than
    --older-than, in short batches. Settled: completed, or failed with every failure closed
    (replayed or discarded). Other orders, failed ones waiting for a decision among them, keep
    their whole history."""
    age = parse_age(older_than)
    settings = settings_or_exit()
    require_services(settings, rabbitmq=False)
    pruned = prune(older_than=age, dry_run=dry_run, batch=batch)
    verb = "would delete" if dry_run else "deleted"
    out.print(
        f"{verb}: {pruned.audit_rows} audit rows of settled orders, "
        f"{pruned.outbox_rows} sent outbox rows, {pruned.failures} resolved failures "
        f"(older than {older_than})"
    )


def register(cli: typer.Typer) -> None:
    cli.command("prune")(prune_command)
