"""Worker logging: the hub's structured logs for Celery's own lines, and each task's context.

Connecting ``setup_logging`` tells Celery to leave logging to us (it then configures nothing
itself), so its lines, ours and the libraries' come out in one format.
"""

from __future__ import annotations

from typing import Any

from celery.signals import setup_logging, task_postrun, task_prerun

from hub.observability.logs import (
    bind_log_context,
    clear_log_context,
    configure_logging,
    step_task_context,
)
from hub.settings import get_settings


@setup_logging.connect
def _hub_logging(loglevel: int | None = None, **_: Any) -> None:
    settings = get_settings()
    configure_logging("worker", fmt=settings.log_format, level=loglevel or settings.log_level)


@task_prerun.connect
def _bind_task(task_id: str, task: Any, args: tuple[Any, ...] = (), **_: Any) -> None:
    clear_log_context()  # nothing of the previous task may leak into this one
    bind_log_context(**step_task_context(str(task.name), task_id, args))


@task_postrun.connect
def _unbind_task(**_: Any) -> None:
    clear_log_context()
