"""Keep a worker's memory flat while many steps are retried or held back by the breaker.

Every ``task.retry`` makes Celery keep an ``ExceptionInfo`` whose billiard ``Traceback`` copies
each frame's code positions: tens of kilobytes of reference cycles per retry. Python's cycle
collector counts objects, not bytes, and runs a full collection only once enough objects pile
up, so during an outage each pool process grew from ~90 MB to ~220 MB of garbage (measured by
``make bench``, figure d). Two cheap measures keep it at its idle size:

- ``gc.freeze()`` once the pool process has started (on the threads pool, once the worker is
  ready: its threads share the one heap): what it inherited and built at start-up is never
  scanned again, so a full collection costs ~15 ms instead of ~200 ms (and the
  parent's pages are not dirtied by the child's collector);
- after a retry, a full collection, at most once every ten seconds per process (a flaky system
  retries all the time, and a collection per second per process cost a few per cent of CPU).
"""

from __future__ import annotations

import gc
import time
from typing import Any

from celery.signals import task_retry, worker_process_init, worker_ready

COLLECT_EVERY = 10.0  # seconds, at most, between two collections of one process

_last_collect = 0.0


@worker_process_init.connect
@worker_ready.connect
def _freeze_startup_heap(**_: Any) -> None:
    gc.freeze()


@task_retry.connect
def _collect_retry_garbage(**_: Any) -> None:
    global _last_collect
    now = time.monotonic()
    if now - _last_collect >= COLLECT_EVERY:
        _last_collect = now
        gc.collect()
