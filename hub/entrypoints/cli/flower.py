"""``hub flower``: Flower on the hub's Celery app, with basic auth unless told to run open.

Flower takes its users from ``FLOWER_BASIC_AUTH`` (comma-separated ``user:password``). The
credentials go there, in this process's environment, rather than on the command line where
``ps`` would show them to every user of the machine.
"""

from __future__ import annotations

import os

import typer

from hub.entrypoints.cli.support import err, require_services, settings_or_exit
from hub.observability.logs import configure_logging
from hub.settings import Settings
from tasks.app import app

AUTH_VARIABLE = "FLOWER_BASIC_AUTH"


class FlowerAuthMissing(Exception):
    """Flower needs HUB_FLOWER_USER and HUB_FLOWER_PASSWORD (or HUB_FLOWER_OPEN=true)."""


def basic_auth(settings: Settings) -> str | None:
    """``user:password`` for Flower, or None when explicitly told to run open."""
    user, password = settings.flower_user, settings.flower_password
    if user and password:
        secret = password.get_secret_value()
        if "," in secret:
            raise FlowerAuthMissing(
                "HUB_FLOWER_PASSWORD must not contain a comma (Flower splits on it)"
            )
        return f"{user}:{secret}"
    if settings.flower_open:
        return None
    missing = [
        name
        for name, value in (("HUB_FLOWER_USER", user), ("HUB_FLOWER_PASSWORD", password))
        if not value
    ]
    raise FlowerAuthMissing(
        f"Flower will not start without authentication: set {' and '.join(missing)} "
        "(or HUB_FLOWER_OPEN=true to run it open, on a trusted machine only)"
    )


def flower_argv(settings: Settings) -> list[str]:
    """The ``celery`` command line of Flower (no secrets in it)."""
    return ["flower", f"--address={settings.flower_host}", f"--port={settings.flower_port}"]


def flower() -> None:
    """Flower, the Celery dashboard, on HUB_FLOWER_HOST:HUB_FLOWER_PORT, with basic auth."""

    settings = settings_or_exit()
    try:
        auth = basic_auth(settings)
    except FlowerAuthMissing as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    require_services(settings, postgres=False)
    configure_logging("flower", fmt=settings.log_format, level=settings.log_level)
    if auth is None:
        os.environ.pop(AUTH_VARIABLE, None)
        err.print("[yellow]Flower runs WITHOUT authentication (HUB_FLOWER_OPEN=true)[/yellow]")
    else:
        os.environ[AUTH_VARIABLE] = auth

    raise typer.Exit(app.start(argv=flower_argv(settings)) or 0)


def register(cli: typer.Typer) -> None:
    cli.command("flower")(flower)
