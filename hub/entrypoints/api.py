"""The intake API: ``POST /orders``, ``GET /orders/{id}``, ``GET /healthz``."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError as DatabaseDown
from starlette.concurrency import run_in_threadpool

from hub import bootstrap
from hub.core.ports import ChainPublisher
from hub.core.schemas import EXTERNAL_ID_PATTERN, IDEMPOTENCY_KEY_PATTERN, OrderIn, order_openapi
from hub.core.senders import ANONYMOUS_SENDER
from hub.db.engine import unit_of_work
from hub.entrypoints import api_auth as intake_auth
from hub.entrypoints.ui import pages as ui
from hub.observability import metrics
from hub.observability.health import postgres_problem, rabbitmq_problem
from hub.observability.logs import configure_logging
from hub.observability.request_log import RequestLog
from hub.observability.snapshot.take import take_snapshot
from hub.services.intake import Accepted, accept
from hub.services.orders import find_order, order_view
from hub.services.outbox import publish_accepted
from hub.settings import Settings, get_settings

log = logging.getLogger("hub.api")

IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
ORDER_REF = re.compile(EXTERNAL_ID_PATTERN)


def _error(status: int, code: str, detail: Any, **headers: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def _field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(part) for part in item["loc"]) or "body", "message": item["msg"]}
        for item in exc.errors(include_url=False, include_input=False)
    ]


async def _read_capped(request: Request, cap: int) -> bytes | None:
    """The body, or None once it passes ``cap`` bytes (whatever Content-Length claimed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > cap:
            return None
    return bytes(body)


def owner(caller: intake_auth.Caller | None) -> str:
    """The sender whose orders a caller creates and sees (one shared owner with auth off)."""
    return ANONYMOUS_SENDER if caller is None else caller.sender


def create_api(
    settings: Settings | None = None, *, publisher: ChainPublisher | None = None
) -> FastAPI:
    settings = settings or get_settings()
    chain_publisher = publisher or bootstrap.chain_publisher(settings)
    api = FastAPI(title="Order integration hub", version="1")
    if not settings.intake_auth:
        log.warning("intake authentication is OFF (HUB_INTAKE_AUTH=false): anyone may post")

    def store_and_publish(order: OrderIn, key: str | None, sender: str) -> Accepted:
        # One trip to the thread pool: the order's one statement, then the fast path's publish
        # (allowed to fail: the relay catches up).
        accepted = accept(order, idempotency_key=key, sender=sender)
        if accepted.outbox_id is not None:
            publish_accepted(
                chain_publisher, outbox_id=accepted.outbox_id, order_id=accepted.order_id
            )
        return accepted

    @api.post("/orders", status_code=202, openapi_extra=order_openapi())
    async def create_order(request: Request) -> JSONResponse:
        try:  # before the body is read: strangers get nothing but a 401
            caller = await intake_auth.authenticate_request(request, settings)
        except intake_auth.Refused as refused:
            return refused.response()
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            return _error(415, "unsupported_media_type", "send Content-Type: application/json")
        key = request.headers.get("idempotency-key")
        if key is not None and not IDEMPOTENCY_KEY.match(key):
            return _error(
                422,
                "validation_error",
                [{"field": "Idempotency-Key", "message": "1-128 printable ASCII"}],
            )
        body = await _read_capped(request, settings.max_body_bytes)
        if body is None:
            return _error(
                413, "payload_too_large", f"the body is larger than {settings.max_body_bytes} bytes"
            )
        try:
            intake_auth.verify_signature(caller, request.headers, body)
        except intake_auth.Refused as refused:
            return refused.response()
        try:
            order = OrderIn.model_validate_json(body)
        except ValidationError as exc:
            return _error(422, "validation_error", _field_errors(exc))
        try:
            accepted = await run_in_threadpool(store_and_publish, order, key, owner(caller))
        except DatabaseDown:
            log.error("PostgreSQL unavailable at intake", exc_info=True)
            return _error(
                503,
                "database_unavailable",
                "PostgreSQL is not answering; retry later",
                **{"Retry-After": "5"},
            )
        location = f"/orders/{accepted.order_id}"
        return JSONResponse(
            {
                "order_id": str(accepted.order_id),
                "status": accepted.status,
                "external_id": order.external_id,
                "created": accepted.created,
            },
            status_code=202 if accepted.created else 200,
            headers={"Location": location},
        )

    @api.get("/orders/{ref}")
    def get_order(ref: str, request: Request) -> JSONResponse:
        try:  # an order's progress and downstream ids are senders' business, not the public's
            caller = intake_auth.authenticate(request.headers, settings)
            intake_auth.verify_signature(caller, request.headers, b"")
        except intake_auth.Refused as refused:
            return refused.response()
        if not ORDER_REF.match(ref):  # no order has such an id; and NUL would crash the query
            return _error(404, "not_found", "no order with that id or external id")
        with unit_of_work() as session:
            # Another sender's order is a 404 like a missing one: a 403 would tell the caller
            # that the order exists.
            order = find_order(session, ref, sender=owner(caller))
            if order is None:
                return _error(404, "not_found", f"no order {ref}")
            return JSONResponse(order_view(session, order))

    @api.get("/healthz")
    def healthz() -> JSONResponse:
        down = [
            p
            for p in (postgres_problem(settings, timeout=2), rabbitmq_problem(settings, timeout=2))
            if p
        ]
        if down:
            return JSONResponse(
                {
                    "status": "unavailable",
                    "down": {p.service: {"where": p.where, "reason": p.reason} for p in down},
                },
                status_code=503,
            )
        return JSONResponse({"status": "ok", "postgresql": "ok", "rabbitmq": "ok"})

    # Routes that live in modules of their own are installed here, one line each.
    metrics.install_metrics(api, settings)
    ui.install(
        api,
        settings=settings,
        publisher=chain_publisher,
        snapshot=lambda: take_snapshot(settings, workers=bootstrap.celery_app()),
    )
    return api


def served_api() -> RequestLog:
    """What ``hub api`` serves in each of its processes (uvicorn calls this factory in every
    worker process it starts): the API with its request log, logging configured."""
    settings = get_settings()
    configure_logging("api", fmt=settings.log_format, level=settings.log_level)
    return RequestLog(create_api(settings))
