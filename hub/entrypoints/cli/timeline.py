"""An order's timeline as a table for the terminal."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from hub.entrypoints.cli.plain import plain
from hub.entrypoints.cli.support import out


def print_timeline(view: dict[str, Any]) -> None:
    # The external id is the sender's, the details a downstream's: data, never markup.
    heading = Text.assemble(
        "order ",
        (str(view["order_id"]), "bold"),
        " (",
        plain(view["external_id"]),
        "): ",
        (str(view["status"]), "bold"),
    )
    out.print(heading)
    table = Table("when (UTC)", "event", "step", "attempt", "status", "detail")
    for event in view["timeline"]:
        detail = ", ".join(f"{k}={v}" for k, v in event["detail"].items() if v is not None)
        table.add_row(
            event["at"][11:23],
            event["event_type"],
            event["step"] or "",
            str(event["attempt"] or ""),
            event["status"],
            plain(detail),
        )
    out.print(table)
