"""The intake API: ``POST /orders``, ``GET /orders/{id}``, ``POST /orders/{id}/cancel``,
``GET /healthz``."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from hub import bootstrap
from hub.core.amendments import BadAmendment
from hub.core.ports import ChainPublisher
from hub.core.schemas import (
    EXTERNAL_ID_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    AmendIn,
    CancelIn,
    OrderIn,
    order_openapi,
)
from hub.core.senders import ANONYMOUS_SENDER
from hub.db.engine import unit_of_work
from hub.db.unavailable import is_unavailable
from hub.entrypoints import api_auth as intake_auth
from hub.entrypoints.request_guard import duplicate_key, guard_requests
from hub.entrypoints.ui import pages as ui
from hub.observability import metrics
from hub.observability.cached import Cached
from hub.observability.health import postgres_problem, rabbitmq_problem
from hub.observability.logs import configure_logging
from hub.observability.request_log import RequestLog
from hub.observability.snapshot.take import take_snapshot
from hub.services.amendments import FieldAlreadyUsed, NotAmendable, amend_order
from hub.services.cancellation import AlreadyCompleted, cancel_order
from hub.services.intake import Accepted, RepeatDiffers, accept
from hub.services.orders import find_order, order_view
from hub.services.outbox import publish_accepted, publish_row_now
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


def _duplicated(body: bytes) -> JSONResponse | None:
    """A 422 for a key twice in one JSON object (parsers disagree on which one wins)."""
    key = duplicate_key(body)
    if key is None:
        return None
    message = "this key appears twice in one object"
    return _error(422, "validation_error", [{"field": key, "message": message}])


def owner(caller: intake_auth.Caller | None) -> str:
    """The sender whose orders a caller creates and sees (one shared owner with auth off)."""
    return ANONYMOUS_SENDER if caller is None else caller.sender


def create_api(
    settings: Settings | None = None, *, publisher: ChainPublisher | None = None
) -> FastAPI:
    settings = settings or get_settings()
    chain_publisher = publisher or bootstrap.chain_publisher(settings)
    docs = settings.api_docs  # off unless asked: Swagger's page loads from a CDN
    api = FastAPI(
        title="Order integration hub",
        version="1",
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    # No redirect built from the Host header (Starlette's slash redirect is absolute).
    api.router.redirect_slashes = False
    guard_requests(api, settings)
    if not settings.intake_auth:
        log.warning("intake authentication is OFF (HUB_INTAKE_AUTH=false): anyone may post")

    def _verify(caller: intake_auth.Caller | None, request: Request, body: bytes) -> None:
        intake_auth.verify_signature(
            caller,
            request.headers,
            body,
            method=request.method,
            path=request.url.path,
            accept_v1=settings.signature_v1,
        )

    @api.exception_handler(SQLAlchemyError)
    async def database_away(request: Request, exc: Exception) -> JSONResponse:
        # Any route (an order's status, the operator pages) while PostgreSQL fails over: a 503
        # the caller can retry, not a 500.
        if not is_unavailable(exc):
            raise exc
        log.warning("PostgreSQL unavailable at %s %s", request.method, request.url.path)
        return _error(
            503,
            "database_unavailable",
            "PostgreSQL is not answering; retry later",
            **{"Retry-After": "5"},
        )

    def store_and_publish(order: OrderIn, key: str | None, sender: str) -> Accepted:
        # One trip to the thread pool: the order's one statement, then the fast path's publish
        # (allowed to fail: the relay catches up).
        accepted = accept(order, idempotency_key=key, sender=sender, pipeline=settings.pipeline)
        if accepted.outbox_id is not None:
            publish_accepted(
                chain_publisher,
                outbox_id=accepted.outbox_id,
                order_id=accepted.order_id,
                steps=accepted.steps,
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
            _verify(caller, request, body)
        except intake_auth.Refused as refused:
            return refused.response()
        doubled = _duplicated(body)
        if doubled is not None:
            return doubled
        try:
            order = OrderIn.model_validate_json(body)
        except ValidationError as exc:
            return _error(422, "validation_error", _field_errors(exc))
        try:
            accepted = await run_in_threadpool(store_and_publish, order, key, owner(caller))
        except RepeatDiffers as differs:
            # Nothing stored; the reply names the stored order and what differs from it.
            return JSONResponse(
                {
                    "error": differs.code,
                    "detail": str(differs),
                    "fields": differs.fields,
                    "order_id": str(differs.order_id),
                    "external_id": differs.external_id,
                    "status": differs.status,
                },
                status_code=422 if differs.code == "idempotency_key_reuse" else 409,
                headers={"Location": f"/orders/{differs.order_id}"},
            )
        except SQLAlchemyError as exc:
            if not is_unavailable(exc):
                raise
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
                "external_id": accepted.external_id,
                "created": accepted.created,
            },
            status_code=202 if accepted.created else 200,
            headers={"Location": location},
        )

    @api.get("/orders/{ref}")
    def get_order(ref: str, request: Request) -> JSONResponse:
        try:  # an order's progress and downstream ids are senders' business, not the public's
            caller = intake_auth.authenticate(request.headers, settings)
            _verify(caller, request, b"")
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

    def cancel_and_publish(ref: str, sender: str, reason: str) -> JSONResponse:
        with unit_of_work() as session:
            order = find_order(session, ref, sender=sender)
            if order is None:
                return _error(404, "not_found", f"no order {ref}")
            try:
                cancelled = cancel_order(session, order.id, by=f"sender:{sender}", reason=reason)
            except AlreadyCompleted as exc:
                return _error(409, AlreadyCompleted.code, str(exc))
        if cancelled.outbox_id is not None:  # after the commit: the relay catches up otherwise
            publish_row_now(chain_publisher, cancelled.outbox_id)
        return JSONResponse(
            {"order_id": str(cancelled.order_id), "status": cancelled.status},
            status_code=202,
            headers={"Location": f"/orders/{cancelled.order_id}"},
        )

    @api.post("/orders/{ref}/cancel", status_code=202)
    async def cancel(ref: str, request: Request) -> JSONResponse:
        try:
            caller = await intake_auth.authenticate_request(request, settings)
        except intake_auth.Refused as refused:
            return refused.response()
        body = await _read_capped(request, settings.max_body_bytes)
        if body is None:
            return _error(413, "payload_too_large", "the body is too large")
        try:
            _verify(caller, request, body)
        except intake_auth.Refused as refused:
            return refused.response()
        if not ORDER_REF.match(ref):
            return _error(404, "not_found", "no order with that id or external id")
        try:
            asked = CancelIn.model_validate_json(body or b"{}")
        except ValidationError as exc:
            return _error(422, "validation_error", _field_errors(exc))
        return await run_in_threadpool(
            cancel_and_publish, ref, owner(caller), asked.reason or "cancelled by the sender"
        )

    def services_down() -> list[str]:
        checks = (postgres_problem(settings, timeout=2), rabbitmq_problem(settings, timeout=2))
        return [problem.service.lower() for problem in checks if problem]

    health = Cached(services_down, max_age=settings.snapshot_max_age)

    def amend(ref: str, sender: str, changes: dict[str, Any]) -> JSONResponse:
        with unit_of_work() as session:
            order = find_order(session, ref, sender=sender)
            if order is None:
                return _error(404, "not_found", f"no order {ref}")
            try:
                amend_order(
                    session,
                    order.id,
                    changes,
                    by=f"sender:{sender}",
                    reason="amended by the sender",
                )
            except BadAmendment as exc:
                return _error(422, "validation_error", [{"field": exc.field, "message": str(exc)}])
            except FieldAlreadyUsed as exc:
                return JSONResponse(
                    {"error": exc.code, "field": exc.field, "detail": str(exc)}, status_code=409
                )
            except NotAmendable as exc:
                return _error(409, NotAmendable.code, str(exc))
            session.expire_all()
            return JSONResponse(order_view(session, order))

    @api.patch("/orders/{ref}")
    async def patch_order(ref: str, request: Request) -> JSONResponse:
        try:
            caller = await intake_auth.authenticate_request(request, settings)
        except intake_auth.Refused as refused:
            return refused.response()
        body = await _read_capped(request, settings.max_body_bytes)
        if body is None:
            return _error(413, "payload_too_large", "the body is too large")
        try:
            _verify(caller, request, body)
        except intake_auth.Refused as refused:
            return refused.response()
        if not ORDER_REF.match(ref):
            return _error(404, "not_found", "no order with that id or external id")
        doubled = _duplicated(body)
        if doubled is not None:
            return doubled
        try:
            asked = AmendIn.model_validate_json(body)
        except ValidationError as exc:
            return _error(422, "validation_error", _field_errors(exc))
        changes = asked.model_dump(mode="json", exclude_none=True)
        if not changes:
            return _error(
                422,
                "validation_error",
                [{"field": "body", "message": "send ship_to, customer or lines"}],
            )
        return await run_in_threadpool(amend, ref, owner(caller), changes)

    @api.get("/healthz")
    async def healthz() -> JSONResponse:
        # Which part is down, never where it is or who the hub logs in as (hosts, ports, users
        # and vhosts are for operators: hub doctor, the status page).
        down = await health.get()
        if down:
            return JSONResponse({"status": "unavailable", "down": down}, status_code=503)
        return JSONResponse({"status": "ok", "postgresql": "ok", "rabbitmq": "ok"})

    # Routes that live in modules of their own are installed here, one line each.
    # Kept on the app's state: how often the snapshot was taken is what the tests count.
    api.state.metrics_page = metrics.install_metrics(api, settings)
    api.state.health = health
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
