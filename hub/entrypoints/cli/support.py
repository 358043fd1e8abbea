"""What every ``hub`` command shares: consoles, settings that fail politely, service checks."""

from __future__ import annotations

import signal
import sys
import threading

import typer
from rich.console import Console
from rich.markup import escape

from hub.observability.health import postgres_problem, rabbitmq_problem
from hub.settings import Settings, SettingsError, get_settings

# Piped into grep or a file, a table must not fold ids across lines: give it room.
_PIPED_WIDTH = None if sys.stdout.isatty() else 220
out = Console(width=_PIPED_WIDTH)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 220)


def settings_or_exit() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None


def require_services(settings: Settings, *, postgres: bool = True, rabbitmq: bool = True) -> None:
    """Stop with a message naming each service that does not answer (never a stack trace)."""

    down = []
    if postgres:
        down.append(postgres_problem(settings))
    if rabbitmq:
        down.append(rabbitmq_problem(settings))
    problems = [p for p in down if p]
    for problem in problems:
        err.print(f"[red]{escape(str(problem))}[/red]")
    if problems:
        raise typer.Exit(3)


def warn_if_broker_down(settings: Settings, consequence: str) -> bool:
    """Say (without stopping) that RabbitMQ does not answer and what that means; True if down."""
    problem = rabbitmq_problem(settings)
    if problem:
        err.print(f"[yellow]{escape(str(problem))}[/yellow]\n  starting anyway: {consequence}")
    return problem is not None


def stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop
