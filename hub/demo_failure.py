"""The demo's second act: an order fails (out of stock), is listed, restocked and replayed."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.demo import DemoRun


def failure_scene(run: DemoRun) -> list[str]:
    """Replay is part of the failures work; until it lands the demo shows the happy path only."""
    return []
