"""``hub keys``: make, list and revoke the intake API keys of senders."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from hub.db.engine import unit_of_work
from hub.entrypoints.cli.plain import plain
from hub.entrypoints.cli.support import err, out, require_services, settings_or_exit
from hub.services.keys import KeysError, create_key, list_keys, revoke_key

keys_cli = typer.Typer(
    no_args_is_help=True, help="Intake API keys of senders: create, list, revoke."
)


@contextmanager
def _keys_session() -> Iterator[Session]:
    require_services(settings_or_exit(), rabbitmq=False)
    try:
        with unit_of_work() as session:
            yield session
    except ProgrammingError:
        err.print("[red]the database has no api_keys table yet: run `make migrate` first[/red]")
        raise typer.Exit(2) from None
    except KeysError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


@keys_cli.command("create")
def create_command(
    sender: Annotated[str, typer.Argument(help="who will use the key, e.g. crm")],
    sign: Annotated[
        bool, typer.Option("--sign", help="also make a secret for HMAC-signed requests")
    ] = False,
) -> None:
    """Make a key for SENDER and print it, once: it cannot be shown again."""
    with _keys_session() as session:
        new = create_key(session, sender, signing=sign)
    out.print(f"key id:         {new.key_id}", highlight=False)
    out.print(f"sender:         {new.sender}", highlight=False)
    out.print(f"API key:        {new.token}", highlight=False, soft_wrap=True)
    if new.signing_secret:
        out.print(f"signing secret: {new.signing_secret}", highlight=False, soft_wrap=True)
    kept = (
        # The hub must compute the HMAC, so it keeps the signing secret itself (not a hash).
        "Store them now: only the key's hash is kept; the signing secret is stored as it is, "
        "to check signatures, and never shown again."
        if new.signing_secret
        else "Store it now: only its hash is kept."
    )
    out.print(
        f"{kept} Send it as `Authorization: Bearer <key>`"
        + (
            "; sign each request with X-Hub-Timestamp and X-Hub-Signature: "
            "v2=HMAC-SHA256(secret, 'v2\\n' + timestamp + '\\n' + method + '\\n' + path + "
            "'\\n' + Idempotency-Key + '\\n' + body) (docs/security.md, intake keys)."
            if new.signing_secret
            else "."
        )
    )


@keys_cli.command("list")
def list_command() -> None:
    """Show every key: id, sender, whether it signs, made and revoked when (never the key)."""
    with _keys_session() as session:
        rows = list_keys(session)
    table = Table("key id", "sender", "signs", "created (UTC)", "revoked (UTC)", "revoked by")
    for row in rows:
        table.add_row(
            row.id,
            row.sender,
            "yes" if row.signing_secret else "no",
            f"{row.created_at:%Y-%m-%d %H:%M:%S}",
            f"{row.revoked_at:%Y-%m-%d %H:%M:%S}" if row.revoked_at else "",
            plain(row.revoked_by),
        )
    out.print(table)


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


@keys_cli.command("revoke")
def revoke_command(key_id: Annotated[str, typer.Argument(help="the key's id")]) -> None:
    """Revoke a key: the next request that presents it gets 401."""
    with _keys_session() as session:
        row = revoke_key(session, key_id, by=_operator())
        sender, revoked_at, revoked_by = row.sender, row.revoked_at, row.revoked_by
        already = session.is_modified(row) is False
    if already and revoked_at is not None:
        out.print(
            f"key {key_id} of {sender} was already revoked "
            f"({revoked_at:%Y-%m-%d %H:%M:%S} UTC, by {revoked_by}); nothing changed"
        )
        return
    out.print(f"key {key_id} of {sender} revoked")
