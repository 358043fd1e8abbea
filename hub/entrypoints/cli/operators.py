"""``hub operators``: each operator a person with an account (add, remove, list, unlock)."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from hub.db.engine import unit_of_work
from hub.entrypoints.cli.plain import plain
from hub.entrypoints.cli.support import err, out, require_services, settings_or_exit
from hub.services import operators

operators_cli = typer.Typer(
    no_args_is_help=True,
    help="Operator accounts of the pages: add, remove, list, unlock (argon2 hashes).",
)


@contextmanager
def _session() -> Iterator[Session]:
    require_services(settings_or_exit(), rabbitmq=False)
    try:
        with unit_of_work() as session:
            yield session
    except ProgrammingError:
        err.print("[red]the database has no operators table yet: run `make migrate` first[/red]")
        raise typer.Exit(2) from None
    except operators.OperatorError as exc:
        err.print(plain(str(exc)), style="red")
        raise typer.Exit(1) from None


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        err.print("[red]the two passwords differ; nothing changed[/red]")
        raise typer.Exit(1)
    return first


@operators_cli.command("add")
def add_command(
    name: Annotated[str, typer.Argument(help="the person's login name, e.g. ada")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin (scripts)")
    ] = False,
) -> None:
    """Make an account; the password (asked twice, at least 12 characters) is kept hashed."""
    password = _password(password_stdin)
    with _session() as session:
        operators.add_operator(session, name, password, by=_who())
    out.print(plain(f"operator {name} added"))


@operators_cli.command("remove")
def remove_command(name: Annotated[str, typer.Argument(help="the account's name")]) -> None:
    """Delete an account: its next request gets 401 (what it did stays in the audit)."""
    with _session() as session:
        operators.remove_operator(session, name, by=_who())
    out.print(plain(f"operator {name} removed"))


@operators_cli.command("unlock")
def unlock_command(name: Annotated[str, typer.Argument(help="the account's name")]) -> None:
    """Clear an account's wrong-password count and lock."""
    with _session() as session:
        operators.unlock_operator(session, name, by=_who())
    out.print(plain(f"operator {name} unlocked"))


@operators_cli.command("list")
def list_command() -> None:
    """Every account: wrong passwords in a row, locked until when, last login."""
    now = datetime.now(UTC)
    with _session() as session:
        rows = operators.list_operators(session)
        table = Table("operator", "password", "wrong in a row", "locked until", "last login (UTC)")
        for row in rows:
            locked = row.locked_until is not None and row.locked_until > now
            table.add_row(
                plain(row.name),
                "HUB_OPERATOR_PASSWORD" if row.password_hash is None else "argon2id hash",
                str(row.failed_logins),
                f"{row.locked_until:%Y-%m-%d %H:%M:%S}" if locked and row.locked_until else "",
                f"{row.last_login_at:%Y-%m-%d %H:%M:%S}" if row.last_login_at else "",
            )
    out.print(table if rows else "no operator accounts (hub operators add NAME)")
