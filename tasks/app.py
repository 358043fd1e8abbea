"""The one Celery app of the hub; ``celery -A tasks.app worker`` starts a worker of it."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from hub.broker.celery_config import celery_config
from hub.settings import Settings, get_settings
from tasks import (
    log_context,  # noqa: F401  (connects the worker's logging signals)
    memory,  # noqa: F401  (keeps retry garbage from piling up in workers)
)


def create_app(settings: Settings) -> Celery:
    app = Celery("hub", include=["tasks.steps"])
    app.conf.update(celery_config(settings))
    return app


app = create_app(get_settings())


@worker_process_init.connect
def _fresh_connections_after_fork(**_: Any) -> None:
    # A prefork child must not share its parent's database sockets.
    from hub.db.engine import get_engine

    get_engine().dispose(close=False)
