"""``hub orders cancel|close|edit``: the operator's choices for one order, by id or external id.

``cancel`` undoes what its steps did (last first) and ends it ``cancelled``; ``close`` ends a
failed or cancelling order as it stands; ``edit`` corrects its ``ship_to`` or ``customer``
(shown as a diff, confirmed, audited) and replays it from the failed step.
"""

from __future__ import annotations

import getpass
import uuid
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from hub import bootstrap
from hub.core.amendments import BadAmendment, parse_sets
from hub.db.engine import unit_of_work
from hub.entrypoints.cli.support import err, out, require_services, settings_or_exit
from hub.services.amendments import FieldAlreadyUsed, NotAmendable, amend_order
from hub.services.cancellation import AlreadyCompleted, NotCancellable, cancel_order, close_order
from hub.services.orders import AmbiguousOrder, find_order
from hub.services.outbox import publish_row_now

orders_cli = typer.Typer(help="Cancel, close or correct one order.", no_args_is_help=True)

OrderRef = Annotated[str, typer.Argument(help="order id or external id")]
Reason = Annotated[str, typer.Option(help="why (required, recorded)")]
Operator = Annotated[str, typer.Option(help="who (recorded)")]


def _order_id(ref: str) -> uuid.UUID:
    with unit_of_work() as session:
        try:  # operators see every sender's orders
            order = find_order(session, ref, sender=None)
        except AmbiguousOrder as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        if order is None:
            err.print(f"[red]no order with id or external id {ref!r}[/red]")
            raise typer.Exit(1)
        return order.id


def _ready(reason: str) -> None:
    if not reason.strip():
        raise typer.BadParameter("a reason is required", param_hint="--reason")
    require_services(settings_or_exit(), rabbitmq=False)


def _publish(outbox_id: int | None) -> None:
    if outbox_id is not None:  # the relay publishes it otherwise
        publish_row_now(bootstrap.chain_publisher(settings_or_exit()), outbox_id)


@orders_cli.command("cancel")
def cancel(ref: OrderRef, reason: Reason = "", operator: Operator = getpass.getuser()) -> None:
    """Cancel an order: what its steps did is undone, last first, then it is cancelled."""
    _ready(reason)
    order_id = _order_id(ref)
    try:
        with unit_of_work() as session:
            done = cancel_order(session, order_id, by=operator, reason=reason)
    except AlreadyCompleted as exc:
        err.print(f"[red]{exc}: a completed order is not cancelled[/red]")
        raise typer.Exit(1) from None
    _publish(done.outbox_id)
    said = "" if done.changed else " (already)"
    out.print(f"order {order_id} {done.status}{said}")


@orders_cli.command("close")
def close(ref: OrderRef, reason: Reason = "", operator: Operator = getpass.getuser()) -> None:
    """Close a failed or cancelling order as it stands, without compensating."""
    _ready(reason)
    order_id = _order_id(ref)
    try:
        with unit_of_work() as session:
            status = close_order(session, order_id, by=operator, reason=reason)
    except NotCancellable as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    out.print(f"order {order_id} {status}")


@orders_cli.command("edit")
def edit(
    ref: OrderRef,
    sets: Annotated[
        list[str], typer.Option("--set", help="FIELD.KEY=VALUE, e.g. ship_to.postal_code=69002")
    ],
    reason: Reason = "",
    operator: Operator = getpass.getuser(),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask to confirm")] = False,
) -> None:
    """Correct an order's ship_to or customer (validated as at intake, refused once a step used
    the field), then replay it from its failed step with the new data."""
    _ready(reason)
    order_id = _order_id(ref)
    try:
        changes = parse_sets(sets)
        with unit_of_work() as session:
            preview = amend_order(
                session, order_id, changes, by=operator, reason=reason, apply=False
            )
        if not preview.changes:
            out.print("nothing changes: the order already says that")
            return
        table = Table("field", "before", "after", title=f"order {order_id}")
        for name, before, after in preview.changes:
            table.add_row(name, Text(str(before)), Text(str(after)))
        out.print(table)
        if not yes and not typer.confirm("apply this change and replay the order?"):
            out.print("nothing changed")
            raise typer.Exit(1)
        with unit_of_work() as session:
            done = amend_order(session, order_id, changes, by=operator, reason=reason, replay=True)
    except (BadAmendment, FieldAlreadyUsed, NotAmendable) as exc:
        err.print(f"[red]refused: {exc}[/red]")
        raise typer.Exit(1) from None
    _publish(done.outbox_id)
    then = f"; replayed from {done.replayed_step}" if done.replayed_step else ""
    out.print(f"amended {', '.join(name for name, _, _ in done.changes)}{then}")
