"""``hub demo``: registered on top of the operators' commands (by ``hub.__main__``), since the
demo, and trial mode with it, sit above every entry point."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from hub.demo.place import demo_place, describe
from hub.demo.run import run_demo
from hub.entrypoints.cli.support import out, settings_or_exit
from hub.settings import Settings, get_settings
from hub.trial.mode import settings_for_demo


def demo(
    orders: Annotated[int, typer.Option(help="orders in the batch")] = 100,
    workers: Annotated[int, typer.Option(help="worker processes (2 pool children each)")] = 2,
    here: Annotated[
        bool,
        typer.Option(
            "--here",
            help="run on the configured database, queue prefix and ports as they are, "
            "not on the demo's own place beside them",
        ),
    ] = False,
) -> None:
    """Start everything, push a batch of orders, show them complete; Ctrl-C stops it all."""
    # Trial mode (SQLite, filesystem://) only here, and only when nothing else is there.
    settings = settings_for_demo(settings_or_exit(), console=out)
    if not here and not settings.trial:
        settings = _own_place(settings)
    raise typer.Exit(run_demo(settings, orders=orders, workers=workers, console=out))


def _own_place(settings: Settings) -> Settings:
    """The settings of the demo's own place; in this process's environment too, so the
    children it starts use them."""
    os.environ.update(demo_place(settings))
    get_settings.cache_clear()
    placed = settings_or_exit()
    out.print(f"[dim]{describe(placed)}[/dim]")
    return placed


def register(cli: typer.Typer) -> None:
    cli.command()(demo)
