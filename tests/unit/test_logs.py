"""Log lines are JSON off a terminal, readable on one, and carry the order, step, attempt, task."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from celery.signals import task_postrun, task_prerun
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

import tasks.log_context  # noqa: F401  (connects the signals under test)
from hub.observability.logs import (
    bind_log_context,
    configure_logging,
    json_notice,
    log_context,
    step_task_context,
)
from hub.observability.request_log import RequestLog, order_in_path

ORDER = "0b6f1a52-8a53-4c1e-9a44-0d7f5d1e2c3b"


class FakeTask:
    name = "hub.step.fulfillment"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """The hub's lines (a test client's own lines left out)."""
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line]
    return [line for line in lines if str(line["logger"]).startswith(("hub", "celery"))]


def test_off_a_terminal_every_line_is_json_with_what_is_bound() -> None:
    stream = io.StringIO()
    assert configure_logging("worker", fmt="auto", stream=stream)

    bind_log_context(order_id=ORDER, step="inventory", attempt=2, task_id="t-1")
    logging.getLogger("hub.tasks").warning("downstream said %s", "503")
    structlog.get_logger("hub.api").info("request", status=202)

    first, second = json_lines(stream)
    assert first["event"] == "downstream said 503"
    assert first["level"] == "warning"
    assert first["logger"] == "hub.tasks"
    assert first["process"] == "worker"
    assert {k: first[k] for k in ("order_id", "step", "attempt", "task_id")} == {
        "order_id": ORDER,
        "step": "inventory",
        "attempt": 2,
        "task_id": "t-1",
    }
    assert second["status"] == 202 and second["order_id"] == ORDER


def test_on_a_terminal_lines_are_readable_not_json() -> None:
    stream = Terminal()
    assert not configure_logging("api", fmt="auto", stream=stream)

    with log_context(order_id=ORDER):
        logging.getLogger("hub.api").info("accepted")

    line = stream.getvalue()
    assert "accepted" in line and ORDER in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_an_exception_is_rendered_inside_its_json_line() -> None:
    stream = io.StringIO()
    configure_logging("relay", fmt="json", stream=stream)

    try:
        raise RuntimeError("broker away")
    except RuntimeError:
        logging.getLogger("hub.relay").exception("relay pass failed")

    [line] = json_lines(stream)
    assert "RuntimeError: broker away" in line["exception"]


def test_celerys_own_task_lines_get_task_step_and_order_from_their_record() -> None:
    stream = io.StringIO()
    configure_logging("worker", fmt="json", stream=stream)
    data = {"id": "t-9", "name": "hub.step.invoice", "args": f"('{ORDER}',)", "kwargs": "{}"}

    logging.getLogger("celery.worker.strategy").info(
        "Task %(name)s[%(id)s] received", data, extra={"data": data}
    )

    [line] = json_lines(stream)
    assert line["event"] == "Task hub.step.invoice[t-9] received"
    assert (line["task_id"], line["step"], line["order_id"]) == ("t-9", "invoice", ORDER)


def test_task_signals_bind_the_task_and_clear_it_afterwards() -> None:
    stream = io.StringIO()
    configure_logging("worker", fmt="json", stream=stream)
    task = FakeTask()
    log = logging.getLogger("hub.tasks")

    task_prerun.send(sender=task, task_id="t-3", task=task, args=(ORDER,), kwargs={})
    log.info("inside")
    task_postrun.send(sender=task, task_id="t-3", task=task, args=(ORDER,), kwargs={})
    log.info("after")

    inside, after = json_lines(stream)
    assert (inside["task_id"], inside["step"], inside["order_id"]) == ("t-3", "fulfillment", ORDER)
    assert "task_id" not in after and "order_id" not in after


def test_only_hub_step_tasks_are_read_for_context() -> None:
    assert step_task_context("celery.chord_unlock", "t", (ORDER,)) == {}
    assert step_task_context("hub.step.inventory", None, "()") == {"step": "inventory"}


def test_api_requests_are_logged_with_the_order_from_the_location_header() -> None:
    stream = io.StringIO()
    configure_logging("api", fmt="json", stream=stream)
    app = FastAPI()

    @app.post("/orders")
    def create() -> JSONResponse:
        logging.getLogger("hub.api").info("storing")
        return JSONResponse({}, status_code=202, headers={"Location": f"/orders/{ORDER}"})

    @app.get("/orders/{ref}")
    def show(ref: str) -> JSONResponse:
        logging.getLogger("hub.api").info("reading")
        return JSONResponse({"ref": ref})

    client = TestClient(RequestLog(app))
    client.post("/orders", json={})
    client.get(f"/orders/{ORDER}")

    storing, created, reading, shown = json_lines(stream)
    assert "order_id" not in storing, "not known before the order is stored"
    assert (created["event"], created["status"], created["order_id"]) == ("request", 202, ORDER)
    assert reading["order_id"] == ORDER, "bound from the path for every line of the request"
    assert (shown["method"], shown["path"], shown["order_id"]) == ("GET", f"/orders/{ORDER}", ORDER)


def test_only_order_paths_name_an_order() -> None:
    assert order_in_path(f"/orders/{ORDER}") == ORDER
    assert order_in_path("/orders/CRM-1001") is None
    assert order_in_path("/healthz") is None


def test_celerys_shutdown_notice_becomes_one_json_line() -> None:
    read, write = os.pipe()
    try:
        json_notice("worker", fd=write)("\nworker: Warm shutdown (MainProcess)", None)
        written = os.read(read, 4096).decode()
    finally:
        os.close(read)
        os.close(write)
    [line] = written.splitlines()
    parsed = json.loads(line)
    assert parsed["event"] == "worker: Warm shutdown (MainProcess)"
    assert (parsed["process"], parsed["level"]) == ("worker", "info")
    assert parsed["timestamp"].endswith("Z") and parsed["pid"] == os.getpid()
