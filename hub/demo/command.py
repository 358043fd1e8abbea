"""``hub demo``: registered on top of the operators' commands (by ``hub.__main__``), since the
demo, and trial mode with it, sit above every entry point."""

from __future__ import annotations

from typing import Annotated

import typer

from hub.demo.run import run_demo
from hub.entrypoints.cli.support import out, settings_or_exit
from hub.trial.mode import settings_for_demo


def demo(
    orders: Annotated[int, typer.Option(help="orders in the batch")] = 100,
    workers: Annotated[int, typer.Option(help="worker processes (2 pool children each)")] = 2,
) -> None:
    """Start everything, push a batch of orders, show them complete; Ctrl-C stops it all."""
    # Trial mode (SQLite, filesystem://) only here, and only when nothing else is there.
    settings = settings_for_demo(settings_or_exit(), console=out)
    raise typer.Exit(run_demo(settings, orders=orders, workers=workers, console=out))


def register(cli: typer.Typer) -> None:
    cli.command()(demo)
