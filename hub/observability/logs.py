"""Structured logs: JSON lines for machines, a readable console for people, context on each line.

Every process (API, relay, worker, Flower) calls ``configure_logging`` once; what it binds with
``bind_log_context`` (order id, step, attempt, task id) rides on every line it logs until
cleared. Lines from libraries that log through the standard library get the same treatment.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from hub.core.registry import step_of_task

LogFormat = Literal["auto", "json", "console"]

_HANDLER_NAME = "hub"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def bind_log_context(**values: object) -> None:
    """Add ``values`` (None ones skipped) to every line this thread or task logs from now on."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in values.items() if v is not None})


def clear_log_context() -> None:
    """Forget everything bound so far (a worker does this between tasks)."""
    structlog.contextvars.clear_contextvars()


@contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Bind ``values`` for the block only."""
    bound = {k: v for k, v in values.items() if v is not None}
    with structlog.contextvars.bound_contextvars(**bound):
        yield


def step_task_context(name: str, task_id: str | None, args: object) -> dict[str, str]:
    """task_id, step and order_id of a hub step task, from its name, id and args (or their repr)."""
    step = step_of_task(name)
    if step is None:
        return {}
    context = {"step": step}
    if task_id:
        context["task_id"] = task_id
    # The only argument of a step task is the order id; Celery's log records hold its repr.
    found = _UUID.search(args if isinstance(args, str) else repr(args))
    if found:
        context["order_id"] = found.group(0)
    return context


def _celery_task_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # Celery logs "Task ... received/succeeded/retry" with the task's id, name and args in
    # ``record.data``; lifting them covers lines logged outside a bound task (the consumer).
    record = event_dict.get("_record")
    data = getattr(record, "data", None)
    if isinstance(data, dict):
        found = step_task_context(str(data.get("name", "")), data.get("id"), data.get("args"))
        for key, value in found.items():
            event_dict.setdefault(key, value)
    return event_dict


def _process_fields(process_name: str) -> Processor:
    def add(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("process", process_name)
        event_dict.setdefault("pid", os.getpid())  # read per line: prefork children differ
        return event_dict

    return add


def _drop_color_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # uvicorn passes a second, ANSI-coloured copy of its message as an extra.
    event_dict.pop("color_message", None)
    return event_dict


def wants_json(fmt: LogFormat, stream: TextIO) -> bool:
    """JSON unless told otherwise or writing to a terminal."""
    if fmt == "auto":
        return not (hasattr(stream, "isatty") and stream.isatty())
    return fmt == "json"


def configure_logging(
    process_name: str,
    *,
    fmt: LogFormat = "auto",
    level: int | str = "INFO",
    stream: TextIO | None = None,
) -> bool:
    """Send every log line of this process through structlog; return True when it writes JSON.

    Safe to call again (a Celery worker does, once its own set-up runs): the handler is replaced.
    """
    stream = stream or sys.stdout
    json_lines = wants_json(fmt, stream)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _celery_task_fields,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _process_fields(process_name),
        _drop_color_message,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if json_lines:
        final.append(structlog.processors.format_exc_info)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared, processors=[*final, renderer]
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.captureWarnings(True)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    return json_lines


def json_notice(process_name: str, *, fd: int = 1) -> Callable[..., None]:
    """A stand-in for Celery's ``safe_say`` (``worker: Warm shutdown (MainProcess)``), which
    writes to the terminal past logging: the same notice as one JSON line on ``fd``.

    It runs in a signal handler, so it takes no lock and writes with one ``os.write``.
    """

    def say(message: str, _stream: object = None) -> None:
        line = {
            "event": " ".join(str(message).split()),
            "level": "info",
            "logger": "celery.apps.worker",
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "process": process_name,
            "pid": os.getpid(),
        }
        os.write(fd, (json.dumps(line) + "\n").encode())

    return say
