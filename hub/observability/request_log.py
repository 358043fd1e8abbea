"""One log line per API request, with the order it concerns on it and on every line it causes."""

from __future__ import annotations

import re
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.observability.logs import log_context

_ORDER_PATH = re.compile(
    r"^/orders/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:/|$)"
)
# Polled by machines every few seconds: only worth a line when debugging.
_QUIET_PATHS = frozenset({"/healthz", "/metrics"})

log = structlog.get_logger("hub.api.request")


def order_in_path(path: str) -> str | None:
    """The order id a path like ``/orders/<uuid>`` names, if any."""
    found = _ORDER_PATH.match(path.lower())
    return found.group(1) if found else None


class RequestLog:
    """ASGI middleware: binds the order id (from the path, or from the answer's Location)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        order_id = order_in_path(path)
        status = 500
        started = time.perf_counter()

        async def send_and_note(message: Message) -> None:
            nonlocal status, order_id
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", []):
                    if name.lower() == b"location":
                        order_id = order_in_path(value.decode("latin-1")) or order_id
            await send(message)

        with log_context(order_id=order_id):
            try:
                await self.app(scope, receive, send_and_note)
            finally:
                emit = log.debug if path in _QUIET_PATHS else log.info
                emit(
                    "request",
                    method=scope.get("method", ""),
                    path=path,
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                    order_id=order_id,
                )
