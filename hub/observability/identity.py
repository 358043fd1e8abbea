"""What a hub process is: its version and the settings every process of one hub must share.

Workers answer with it over Celery's remote control (``tasks.control``); ``hub doctor``
compares the answers with its own, so a worker left on an old release, or started with another
retry policy or database, is named. Secrets never leave the process: URLs are shown with their
passwords masked and tokens not at all.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from sqlalchemy.engine import make_url

from hub.core.registry import REGISTRY
from hub.observability.health import broker_where
from hub.settings import Settings

# The remote-control command a worker answers with its identity.
COMMAND = "hub_identity"


def hub_version() -> str:
    try:
        return version("order-hub")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def shared_settings(settings: Settings) -> dict[str, str]:
    """The settings that must be the same in every process of one hub."""
    database = make_url(settings.database_url)
    shown: dict[str, Any] = {
        "HUB_QUEUE_PREFIX": settings.queue_prefix,
        "HUB_DATABASE_URL": f"{database.host}:{database.port or 5432}/{database.database}",
        "HUB_BROKER_URL": broker_where(settings.broker_url),
        **{f"HUB_{name.upper()}_URL": system.url for name, system in settings.systems.items()},
        **{
            f"HUB_{name.upper()}_ADAPTER": system.adapter
            for name, system in settings.systems.items()
        },
        "HUB_BREAKER": settings.breaker.model_dump_json(),
        "pipeline": ",".join(settings.pipeline.steps),
    }
    for step in REGISTRY.step_names:
        shown[f"retry policy of {step}"] = settings.retry_policy(step).model_dump_json()
    return {name: str(value) for name, value in shown.items()}


def identity(settings: Settings) -> dict[str, Any]:
    return {"version": hub_version(), "settings": shared_settings(settings)}
