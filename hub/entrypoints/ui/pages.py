"""The failures page: open failures with filters, an order's timeline, replay and discard.

Flower has no retry button (mher/flower#17); this is the hub's. Server-rendered HTML with
autoescaping (failure messages come from downstream systems) and no JavaScript, so the
Content-Security-Policy can forbid scripts outright. Replay and discard go through
``hub.services.replay``, the same code as the CLI, and record the operator who clicked.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from hub.core.pipeline import FAILURE_KINDS, STEPS
from hub.core.ports import ChainPublisher
from hub.db.engine import unit_of_work
from hub.db.models import Failure, Order
from hub.entrypoints.ui.forms import (
    HOME,
    Filters,
    Flash,
    FormError,
    clear_flash,
    read_filters,
    read_form,
    safe_next,
    set_flash,
    take_flash,
)
from hub.entrypoints.ui.operator_auth import (
    form_token_valid,
    issue_form_token,
    operator_dependency,
    same_origin,
)
from hub.services.orders import AmbiguousOrder, find_order, order_view
from hub.services.outbox import publish_row_now
from hub.services.replay import discard_one, find_failures, replay_one
from hub.settings import Settings

log = logging.getLogger("hub.ui")

PAGE_SIZE = 200
REPLAY_REASON = "replayed from the failures page"
SECURITY_HEADERS = {
    # No script may run on these pages, whatever a downstream error message contains.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    # The buttons move stock and money: no framing (clickjacking), no caching, no leaks.
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Not "no-referrer": with it browsers send "Origin: null" on our own form posts.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
WINDOWS = (("last hour", timedelta(hours=1)), ("last 24 h", timedelta(days=1)))


def _moment(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else ""


@lru_cache(maxsize=1)
def _templates() -> Environment:
    env = Environment(
        loader=PackageLoader("hub.entrypoints.ui", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["moment"] = _moment
    return env


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    flash = take_flash(request)
    html = _templates().get_template(template).render(flash=flash, **context)
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if flash is not None:
        clear_flash(response)
    return response


def _back(next_page: str | None, flash: Flash) -> RedirectResponse:
    # 303: the browser follows with a GET, so a reload does not post the action again.
    response = RedirectResponse(safe_next(next_page), status_code=303)
    set_flash(response, flash)
    return response


def _list_failures(filters: Filters) -> tuple[list[Failure], dict[uuid.UUID, str], bool]:
    if filters.criteria is None:
        return [], {}, False
    with unit_of_work() as session:
        failures = find_failures(session, filters.criteria, limit=PAGE_SIZE + 1)
        order_ids = {f.order_id for f in failures}
        rows = session.execute(
            select(Order.id, Order.external_id).where(Order.id.in_(order_ids))
        ).all()
        externals = {order_id: external_id for order_id, external_id in rows}
    return failures[:PAGE_SIZE], externals, len(failures) > PAGE_SIZE


def _order_page(ref: str) -> tuple[dict[str, Any], list[Failure]] | str:
    """The order's view and failures, or why there is none to show."""
    with unit_of_work() as session:
        try:  # operators see every sender's orders
            order = find_order(session, ref, sender=None)
        except AmbiguousOrder as exc:
            return str(exc)
        if order is None:
            return f"No order {ref}"
        view = order_view(session, order)
        failures = list(
            session.scalars(
                select(Failure)
                .where(Failure.order_id == order.id)
                .order_by(Failure.first_failed_at, Failure.id)
            )
        )
    for event in view["timeline"]:
        event["detail_text"] = json.dumps(event["detail"], sort_keys=True, default=str)
    return view, failures


def _not_open(failure: Failure | None) -> Flash:
    if failure is None:
        return Flash("error", "no such failure")
    by = f" by {failure.resolved_by}" if failure.resolved_by else ""
    return Flash(
        "info",
        f"Failure of {failure.step} for order {failure.order_id} was already "
        f"{failure.state}{by}; nothing done.",
    )


def build_router(settings: Settings, publisher: ChainPublisher) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    # A default, not an Annotated alias: with postponed annotations FastAPI resolves names in
    # the module's globals, where a local alias would not be found.
    operator_required = Depends(operator_dependency(settings))

    def publish_now(outbox_id: int) -> bool:
        return publish_row_now(publisher, outbox_id)

    def replay(failure_id: uuid.UUID, operator: str) -> Flash:
        with unit_of_work() as session:
            try:
                done = replay_one(session, failure_id, operator=operator, reason=REPLAY_REASON)
            except LookupError:
                return Flash("error", f"no failure {failure_id}")
            if done.outcome != "replayed":
                return _not_open(session.get(Failure, failure_id))
        queued = done.outbox_id is not None and publish_now(done.outbox_id)
        then = "queued" if queued else "the relay will queue it shortly"
        return Flash("ok", f"Replayed {done.step} of order {done.order_id}: {then}.")

    def discard(failure_id: uuid.UUID, operator: str, reason: str) -> Flash:
        with unit_of_work() as session:
            try:
                done = discard_one(session, failure_id, operator=operator, reason=reason)
            except LookupError:
                return Flash("error", f"no failure {failure_id}")
            if done.outcome != "discarded":
                return _not_open(session.get(Failure, failure_id))
        return Flash("ok", f"Discarded the failure of {done.step} for order {done.order_id}.")

    async def checked_form(request: Request, operator: str) -> dict[str, str] | Response:
        """The posted form, or the refusal of a forged or malformed one."""
        try:
            form = await read_form(request)
        except FormError as exc:
            return PlainTextResponse(str(exc), status_code=exc.status)
        if not same_origin(request) or not form_token_valid(
            settings, operator, form.get("token", "")
        ):
            log.warning("operator form refused: cross-origin or bad token (%s)", operator)
            return PlainTextResponse(
                "refused: this form did not come from the failures page "
                "(cross-origin, or its token is missing or expired); reload the page and retry",
                status_code=403,
            )
        return form

    @router.get("/ui")
    def home(_: str = operator_required) -> RedirectResponse:
        return RedirectResponse(HOME, status_code=303)

    @router.get("/ui/failures")
    async def failures_page(request: Request, operator: str = operator_required) -> HTMLResponse:
        filters = read_filters(request.query_params)
        failures, externals, truncated = await run_in_threadpool(_list_failures, filters)
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        windows = [
            (label, filters.query_string(since=(now - span).strftime("%Y-%m-%dT%H:%M"), until=""))
            for label, span in WINDOWS
        ]
        query = filters.query_string()
        return _page(
            request,
            "failures.html",
            status=422 if filters.problems else 200,
            operator=operator,
            filters=filters,
            steps=STEPS,
            kinds=FAILURE_KINDS,
            failures=failures,
            externals=externals,
            truncated=truncated,
            page_size=PAGE_SIZE,
            windows=windows,
            token=issue_form_token(settings, operator),
            here=f"{HOME}?{query}" if query else HOME,
        )

    @router.get("/ui/orders/{ref}")
    async def order_page(
        ref: str, request: Request, operator: str = operator_required
    ) -> HTMLResponse:
        found = await run_in_threadpool(_order_page, ref)
        if isinstance(found, str):
            return _page(request, "missing.html", status=404, operator=operator, reason=found)
        view, failures = found
        return _page(
            request,
            "order.html",
            operator=operator,
            order=view,
            failures=failures,
            token=issue_form_token(settings, operator),
            here=f"/ui/orders/{view['order_id']}",
        )

    @router.post("/ui/failures/{failure_id}/replay")
    async def replay_action(
        failure_id: uuid.UUID, request: Request, operator: str = operator_required
    ) -> Response:
        form = await checked_form(request, operator)
        if isinstance(form, Response):
            return form
        flash = await run_in_threadpool(replay, failure_id, operator)
        return _back(form.get("next"), flash)

    @router.post("/ui/failures/{failure_id}/discard")
    async def discard_action(
        failure_id: uuid.UUID, request: Request, operator: str = operator_required
    ) -> Response:
        form = await checked_form(request, operator)
        if isinstance(form, Response):
            return form
        reason = " ".join(form.get("reason", "").split())[:500]
        if not reason:
            return _back(form.get("next"), Flash("error", "Discard needs a reason; nothing done."))
        flash = await run_in_threadpool(discard, failure_id, operator, reason)
        return _back(form.get("next"), flash)

    return router


def install(api: FastAPI, *, settings: Settings, publisher: ChainPublisher) -> None:
    """Add the failures page and its actions to the API (one line in ``create_api``)."""
    api.include_router(build_router(settings, publisher))
