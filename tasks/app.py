"""The worker's entry point: ``celery -A tasks.app worker`` starts a worker of the hub's app.

The app comes from the composition root (``hub.bootstrap``) and reads its configuration from
the settings when first needed, not on import.
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_init, worker_process_init

from hub import bootstrap
from hub.db.engine import forget_inherited_connections, size_pools_for_threads
from tasks import (
    control,  # noqa: F401  (registers the remote-control command hub doctor asks)
    log_context,  # noqa: F401  (connects the worker's logging signals)
    memory,  # noqa: F401  (keeps retry garbage from piling up in workers)
)

app = bootstrap.celery_app()


@worker_process_init.connect
def _fresh_connections_after_fork(**_: Any) -> None:
    # A prefork child must not share its parent's database sockets.
    forget_inherited_connections()


@worker_init.connect
def _pools_for_the_threads(sender: Any = None, **_: Any) -> None:
    # On the threads pool every thread runs a step: each may need a database connection at
    # the same moment (a prefork child is one thread, and its pools are rebuilt after fork).
    if sender is not None and runs_on_threads(sender.pool_cls):
        size_pools_for_threads(int(sender.concurrency))


def runs_on_threads(pool_cls: Any) -> bool:
    """Whether a worker's pool (a name such as "threads", or the class) is Celery's threads pool."""
    return "thread" in str(getattr(pool_cls, "__module__", pool_cls))
