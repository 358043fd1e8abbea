"""The bench's hub: the one stack starter (``hub.demo.stack``), started like an operator would.

The settings are already in ``os.environ`` (``bench.env``), which the children inherit.
"""

from __future__ import annotations

from hub.demo.stack import HubStack as Stack

__all__ = ["Stack"]
