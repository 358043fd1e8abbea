"""The worker's answer to ``hub doctor``: its hub version and shared settings."""

from __future__ import annotations

from typing import Any

from celery.worker.control import inspect_command

from hub.observability.identity import COMMAND, identity
from hub.settings import get_settings


@inspect_command(name=COMMAND)
def hub_identity(state: Any) -> dict[str, Any]:
    return identity(get_settings())
