"""An order's timeline as a table for the terminal."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from hub.entrypoints.cli.support import out


def print_timeline(view: dict[str, Any]) -> None:
    out.print(
        f"order [bold]{view['order_id']}[/bold] ({view['external_id']}): "
        f"[bold]{view['status']}[/bold]"
    )
    table = Table("when (UTC)", "event", "step", "attempt", "status", "detail")
    for event in view["timeline"]:
        detail = ", ".join(f"{k}={v}" for k, v in event["detail"].items() if v is not None)
        table.add_row(
            event["at"][11:23],
            event["event_type"],
            event["step"] or "",
            str(event["attempt"] or ""),
            event["status"],
            detail,
        )
    out.print(table)
