"""``hub flower``: Flower on the hub's Celery app, with basic auth unless told to run open.

Flower takes its users from ``FLOWER_BASIC_AUTH`` (comma-separated ``user:password``). The
credentials go there, in this process's environment, rather than on the command line where
``ps`` would show them to every user of the machine.
"""

from __future__ import annotations

import logging
import math
import os
from datetime import UTC, datetime
from typing import Any

import typer

from hub.core.login_policy import LoginCounter, LoginPolicy
from hub.entrypoints.cli.support import err, require_services, settings_or_exit
from hub.observability.logs import configure_logging
from hub.settings import Settings
from tasks.app import app

log = logging.getLogger("hub.flower")

AUTH_VARIABLE = "FLOWER_BASIC_AUTH"

# Flower's write API (apply, async-apply, send-task, revoke, abort, worker shutdown, pool
# resize, add/cancel-consumer, rate limits) is POST; its pages and read API are GET.
READ_ONLY_METHODS = ("GET", "HEAD")


def close_write_api() -> None:
    """Make Flower read-only: it stays the live dashboard, but nothing sent to it can run,
    revoke, stop or reroute work.

    Flower has no read-only option, and every handler it serves derives from its
    ``BaseHandler``; tornado answers a method outside ``SUPPORTED_METHODS`` (its documented
    override point) with 405 before any handler code runs, authentication included. This was
    chosen over a proxy in front: no second process or hop, and no Unix socket, which Flower
    binds world-writable (mode 0777). ``tests/unit/test_flower_auth.py`` checks that every
    route of the installed Flower is covered, so an upgrade that adds its own methods fails
    there.
    """
    from flower.views import BaseHandler

    BaseHandler.SUPPORTED_METHODS = READ_ONLY_METHODS


def slow_down_guessing(policy: LoginPolicy) -> LoginCounter:
    """Slow and lock wrong Flower passwords as the pages do (``hub.core.login_policy``).

    Flower checks its basic auth itself, in ``BaseHandler.get_current_user`` (a 401 for a
    wrong one), with no delay. Wrapped here: a wrong password makes the next one wait (1 s,
    doubling), ten in a row lock Flower's account for the lock's time, and a refused attempt is
    a 429 with Retry-After that is not checked. Counted in this process (Flower is one), and
    logged, not audited: Flower does not need PostgreSQL. A restart of Flower clears a lock.
    """
    import tornado.web
    from flower.views import BaseHandler

    counter = LoginCounter(policy)
    check = BaseHandler.get_current_user

    def get_current_user(handler: Any) -> Any:
        now = datetime.now(UTC)
        wait = counter.wait(now)
        if wait > 0:
            handler.set_header("Retry-After", str(math.ceil(wait)))
            raise tornado.web.HTTPError(429, "too many wrong passwords: try again later")
        try:
            user = check(handler)
        except tornado.web.HTTPError as exc:
            if exc.status_code == 401 and handler.request.headers.get("Authorization"):
                locked = counter.failed_once(now)
                log.warning(
                    "flower login refused from %s (%d wrong in a row%s)",
                    handler.request.remote_ip,
                    counter.failed,
                    ", account locked" if locked else "",
                )
            raise
        if handler.request.headers.get("Authorization"):
            counter.succeeded()
        return user

    BaseHandler.get_current_user = get_current_user
    return counter


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

    close_write_api()
    slow_down_guessing(settings.login)
    raise typer.Exit(app.start(argv=flower_argv(settings)) or 0)


def register(cli: typer.Typer) -> None:
    cli.command("flower")(flower)
