"""The status page: what ``hub status`` shows, in the browser, refreshing itself in place.

The page loads one small script of ours (``static/status.js``) that fetches the live part as an
HTML fragment every few seconds and swaps it in: no full reload, no library, nothing from
another origin (its Content-Security-Policy allows scripts and fetches from this origin only).
The fragment is the same autoescaped template as the first paint, so what a downstream system
wrote is escaped the same way on every refresh.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import lru_cache
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.core.registry import REGISTRY
from hub.core.statuses import ORDER_STATUSES
from hub.entrypoints.ui.operator_auth import operator_dependency
from hub.entrypoints.ui.rendering import SECURITY_HEADERS, page, templates
from hub.observability.health import ServiceDown
from hub.observability.snapshot.facts import Breaker, DatabaseFacts, Snapshot
from hub.settings import Settings

# The failures pages run no script at all; this page runs ours and nothing else.
STATUS_HEADERS = SECURITY_HEADERS | {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; connect-src 'self'; "
        "style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}
DEFAULT_EVERY = 5
EVERY_RANGE = (2, 60)
# A snapshot asks every worker over the broker and waits a second for answers: tabs left open
# on several screens share one snapshot per this many seconds instead of each taking its own.
SNAPSHOT_MAX_AGE = 2.0


class SnapshotCache:
    """The latest snapshot, taken again once it is older than ``max_age`` (one at a time)."""

    def __init__(self, take: Callable[[], Snapshot], *, max_age: float = SNAPSHOT_MAX_AGE) -> None:
        self._take = take
        self._max_age = max_age
        self._lock = threading.Lock()
        self._latest: tuple[float, Snapshot] | None = None

    def get(self) -> Snapshot:
        with self._lock:
            now = time.monotonic()
            if self._latest is None or now - self._latest[0] > self._max_age:
                self._latest = (now, self._take())
            return self._latest[1]


def breaker_rows(facts: DatabaseFacts) -> list[tuple[str, Breaker]]:
    """Every downstream system's breaker, closed when it has no row yet (it never tripped).

    The one place the page reads breakers; ``_breakers.html`` is the one place it draws them.
    """
    systems = sorted({*REGISTRY.systems, *facts.breaker_rows})
    return [(system, facts.breaker_rows.get(system, Breaker("closed"))) for system in systems]


def _status_order(status: str) -> int:
    return ORDER_STATUSES.index(status) if status in ORDER_STATUSES else len(ORDER_STATUSES)


def headline(
    down: list[ServiceDown],
    breakers: list[tuple[str, Breaker]],
    workers: tuple[str, ...] | ServiceDown | None,
    open_failures: int,
) -> tuple[str, str]:
    """(level, sentence): the page's first line, so a healthy hub says so in words."""
    troubles = [f"{part.service} is down" for part in down]
    troubles += [
        f"{system} looks down (breaker {row.state.replace('_', '-')})"
        for system, row in breakers
        if row.state != "closed"
    ]
    if workers == ():
        troubles.append("no worker answers")
    if troubles:
        return "trouble", "Not well: " + "; ".join(troubles) + "."
    if open_failures:
        plural = "s wait" if open_failures != 1 else " waits"
        return "attention", (
            f"Every service answers; {open_failures} open failure{plural} for a decision."
        )
    online = f", {len(workers)} worker(s) online" if isinstance(workers, tuple) else ""
    return "well", (
        f"All is well: PostgreSQL and RabbitMQ answer{online}, every breaker is closed "
        "and no failure is open."
    )


def live_context(snapshot: Snapshot) -> dict[str, Any]:
    """What the live part of the page shows, from one snapshot."""
    parts = (snapshot.database, snapshot.broker, snapshot.workers)
    database = snapshot.database if isinstance(snapshot.database, DatabaseFacts) else None
    statuses = sorted({*ORDER_STATUSES, *(database.orders_by_status if database else {})})
    down = list(dict.fromkeys(p for p in parts if isinstance(p, ServiceDown)))
    breakers = breaker_rows(database) if database else []
    open_failures = sum(database.failures_open.values()) if database else 0
    return {
        "headline": headline(down, breakers, snapshot.workers, open_failures),
        "snapshot": snapshot,
        # One line per service down, each named once (the broker and the workers share one).
        "down": down,
        "database": database,
        "broker": None if isinstance(snapshot.broker, ServiceDown) else snapshot.broker,
        "workers": None if isinstance(snapshot.workers, ServiceDown) else snapshot.workers,
        "statuses": sorted(statuses, key=_status_order),
        "breakers": breakers,
        "limits": database.limits if database else {},
        "failures": sorted(database.failures_open.items()) if database else [],
    }


@lru_cache(maxsize=1)
def _script() -> str:
    return files("hub.entrypoints.ui").joinpath("static/status.js").read_text(encoding="utf-8")


def _every(text: str | None) -> int:
    low, high = EVERY_RANGE
    return max(low, min(high, int(text))) if text and text.isdigit() else DEFAULT_EVERY


def build_router(settings: Settings, take: Callable[[], Snapshot]) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    operator_required = Depends(operator_dependency(settings))
    cache = SnapshotCache(take)

    def unavailable(request: Request, operator: str) -> HTMLResponse:
        # Its numbers come from PostgreSQL's SQL and RabbitMQ's queues, which trial mode lacks.
        return page(request, "status_trial.html", 503, headers=STATUS_HEADERS, operator=operator)

    # HEAD as well as GET: a monitor's or a load balancer's probe of the page gets 200, not 405.
    @router.api_route("/ui/status", methods=["GET", "HEAD"])
    async def status_page(request: Request, operator: str = operator_required) -> HTMLResponse:
        if settings.trial:
            return unavailable(request, operator)
        snapshot = await run_in_threadpool(cache.get)
        return page(
            request,
            "status.html",
            headers=STATUS_HEADERS,
            operator=operator,
            every=_every(request.query_params.get("every")),
            **live_context(snapshot),
        )

    @router.api_route("/ui/status/live", methods=["GET", "HEAD"])
    async def status_live(request: Request, operator: str = operator_required) -> HTMLResponse:
        if settings.trial:
            return unavailable(request, operator)
        snapshot = await run_in_threadpool(cache.get)
        html = templates().get_template("_status_live.html").render(**live_context(snapshot))
        return HTMLResponse(html, headers=STATUS_HEADERS)

    @router.get("/ui/static/status.js")
    def status_script(_: str = operator_required) -> Response:
        return Response(_script(), media_type="text/javascript", headers=STATUS_HEADERS)

    return router
