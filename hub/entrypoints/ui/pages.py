"""The failures page: open failures by cause and one by one with filters, an order's timeline,
replay and discard. (Group and bulk actions are in ``groups``, the status page in
``status_page``; ``install`` adds them all.)

Flower has no retry button (mher/flower#17); this is the hub's. Server-rendered HTML with
autoescaping (failure messages come from downstream systems) and no JavaScript, so the
Content-Security-Policy can forbid scripts outright. Replay and discard go through
``hub.services.replay``, the same code as the CLI, and record the operator who clicked.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from hub.core.amendments import AMENDABLE, BadAmendment
from hub.core.ports import ChainPublisher
from hub.core.registry import REGISTRY
from hub.core.statuses import FAILURE_KINDS
from hub.db.engine import unit_of_work
from hub.db.models import Failure, Order
from hub.entrypoints.ui import groups, status_page
from hub.entrypoints.ui.bulk import BulkReplays
from hub.entrypoints.ui.forms import (
    HOME,
    Filters,
    Flash,
    checked_form,
    read_filters,
)
from hub.entrypoints.ui.operator_auth import (
    issue_form_token,
    operator_dependency,
)
from hub.entrypoints.ui.outage import read_outage
from hub.entrypoints.ui.rendering import back, page
from hub.observability.snapshot.facts import Snapshot
from hub.services.amendments import Amendment, FieldAlreadyUsed, NotAmendable, amend_order
from hub.services.failure_groups import FailureGroup, open_groups
from hub.services.orders import AmbiguousOrder, find_order, order_view
from hub.services.outbox import publish_row_now
from hub.services.replay import cancel_one, close_one, find_failures, replay_one
from hub.settings import Settings

log = logging.getLogger("hub.ui")

PAGE_SIZE = 200
REPLAY_REASON = "replayed from the failures page"
WINDOWS = (("last hour", timedelta(hours=1)), ("last 24 h", timedelta(days=1)))


@dataclass(frozen=True)
class Listing:
    groups: list[FailureGroup]
    failures: list[Failure]  # the oldest PAGE_SIZE
    externals: dict[uuid.UUID, str]
    total: int


def _list_failures(filters: Filters) -> Listing:
    if filters.criteria is None:
        return Listing([], [], {}, 0)
    with unit_of_work() as session:
        groups = open_groups(session, filters.criteria)
        failures = find_failures(session, filters.criteria, limit=PAGE_SIZE)
        order_ids = {f.order_id for f in failures}
        rows = session.execute(
            select(Order.id, Order.external_id).where(Order.id.in_(order_ids))
        ).all()
        externals = {order_id: external_id for order_id, external_id in rows}
    # The groups split the matching failures between them: their counts add up to the total.
    return Listing(groups, failures, externals, sum(group.count for group in groups))


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
        # What the correction form shows and edits (hub.core.amendments.AMENDABLE).
        view["amendable"] = {"ship_to": dict(order.ship_to), "customer": dict(order.customer)}
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
        """Discard is cancel now: the order's done steps are compensated, last first."""
        with unit_of_work() as session:
            try:
                done = cancel_one(session, failure_id, operator=operator, reason=reason)
            except LookupError:
                return Flash("error", f"no failure {failure_id}")
            if done.outcome == "skipped":
                return _not_open(session.get(Failure, failure_id))
        if done.outcome == "refused":
            return Flash("error", f"{done.detail}; nothing done.")
        if done.outbox_id is not None:
            publish_now(done.outbox_id)
        if done.outcome == "replayed":
            return Flash(
                "ok", f"Compensating {done.step} of order {done.order_id} again (replayed)."
            )
        return Flash(
            "ok",
            f"Cancelled order {done.order_id} (failure of {done.step}): what its steps did is "
            "undone, last first.",
        )

    def close(failure_id: uuid.UUID, operator: str, reason: str) -> Flash:
        with unit_of_work() as session:
            try:
                done = close_one(session, failure_id, operator=operator, reason=reason)
            except LookupError:
                return Flash("error", f"no failure {failure_id}")
            if done.outcome == "skipped":
                return _not_open(session.get(Failure, failure_id))
        if done.outcome == "refused":
            return Flash("error", f"{done.detail}; nothing done.")
        return Flash("ok", f"Closed order {done.order_id} as it stands, without compensating.")

    @router.get("/ui")
    def home(_: str = operator_required) -> RedirectResponse:
        return RedirectResponse(HOME, status_code=303)

    @router.api_route("/ui/failures", methods=["GET", "HEAD"])
    async def failures_page(request: Request, operator: str = operator_required) -> HTMLResponse:
        filters = read_filters(request.query_params)
        listing = await run_in_threadpool(_list_failures, filters)
        outage = await run_in_threadpool(read_outage, settings)
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        windows = [
            (label, filters.query_string(since=(now - span).strftime("%Y-%m-%dT%H:%M"), until=""))
            for label, span in WINDOWS
        ]
        query = filters.query_string()
        return page(
            request,
            "failures.html",
            status=422 if filters.problems else 200,
            operator=operator,
            filters=filters,
            steps=REGISTRY.step_names,
            kinds=FAILURE_KINDS,
            groups=listing.groups,
            failures=listing.failures,
            externals=listing.externals,
            total=listing.total,
            truncated=listing.total > PAGE_SIZE,
            page_size=PAGE_SIZE,
            query=query,
            windows=windows,
            outage=outage,
            token=issue_form_token(settings, operator),
            here=f"{HOME}?{query}" if query else HOME,
        )

    @router.get("/ui/orders/{ref}")
    async def order_page(
        ref: str, request: Request, operator: str = operator_required
    ) -> HTMLResponse:
        found = await run_in_threadpool(_order_page, ref)
        if isinstance(found, str):
            return page(request, "missing.html", status=404, operator=operator, reason=found)
        view, failures = found
        return page(
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
        form = await checked_form(request, settings, operator)
        if isinstance(form, Response):
            return form
        flash = await run_in_threadpool(replay, failure_id, operator)
        return back(form.get("next"), flash)

    def correct(
        order_id: uuid.UUID, form: dict[str, str], operator: str, *, apply: bool
    ) -> Amendment | Flash:
        changes: dict[str, dict[str, str]] = {}
        for name, value in form.items():
            field, dot, key = name.partition(".")
            if dot and field in AMENDABLE:
                changes.setdefault(field, {})[key] = " ".join(value.split())
        reason = " ".join(form.get("reason", "").split())[:500]
        if not reason:
            return Flash("error", "A correction needs a reason; nothing done.")
        try:
            with unit_of_work() as session:
                done = amend_order(
                    session,
                    order_id,
                    changes,
                    by=operator,
                    reason=reason,
                    apply=apply,
                    replay=apply,
                )
        except (BadAmendment, FieldAlreadyUsed, NotAmendable) as exc:
            return Flash("error", f"Refused: {exc}; nothing done.")
        except LookupError:
            return Flash("error", f"no order {order_id}")
        if apply and done.outbox_id is not None:
            publish_now(done.outbox_id)
        return done

    @router.post("/ui/orders/{order_id}/edit")
    async def edit_order(
        order_id: uuid.UUID, request: Request, operator: str = operator_required
    ) -> Response:
        """First post: the diff to confirm. Second (``confirm=yes``): applied and replayed."""
        form = await checked_form(request, settings, operator)
        if isinstance(form, Response):
            return form
        here = f"/ui/orders/{order_id}"
        apply = form.get("confirm") == "yes"
        done = await run_in_threadpool(correct, order_id, form, operator, apply=apply)
        if isinstance(done, Flash):
            return back(here, done)
        if not done.changes:
            return back(here, Flash("info", "Nothing changes: the order already says that."))
        if not apply:
            fields = {k: v for k, v in form.items() if k not in ("token", "confirm")}
            return page(
                request,
                "edit_confirm.html",
                operator=operator,
                order_id=str(order_id),
                changes=done.changes,
                fields=fields,
                token=issue_form_token(settings, operator),
            )
        changed = ", ".join(name for name, _, _ in done.changes)
        then = f" and replayed from {done.replayed_step}" if done.replayed_step else ""
        return back(here, Flash("ok", f"Corrected {changed}{then}."))

    async def with_reason(
        failure_id: uuid.UUID,
        request: Request,
        operator: str,
        action: Callable[[uuid.UUID, str, str], Flash],
    ) -> Response:
        form = await checked_form(request, settings, operator)
        if isinstance(form, Response):
            return form
        reason = " ".join(form.get("reason", "").split())[:500]
        if not reason:
            return back(form.get("next"), Flash("error", "Discard needs a reason; nothing done."))
        flash = await run_in_threadpool(action, failure_id, operator, reason)
        return back(form.get("next"), flash)

    @router.post("/ui/failures/{failure_id}/discard")
    async def discard_action(
        failure_id: uuid.UUID, request: Request, operator: str = operator_required
    ) -> Response:
        return await with_reason(failure_id, request, operator, discard)

    @router.post("/ui/failures/{failure_id}/close")
    async def close_action(
        failure_id: uuid.UUID, request: Request, operator: str = operator_required
    ) -> Response:
        return await with_reason(failure_id, request, operator, close)

    return router


def install(
    api: FastAPI,
    *,
    settings: Settings,
    publisher: ChainPublisher,
    snapshot: Callable[[], Snapshot],
) -> None:
    """Add the operator pages and their actions to the API (one line in ``create_api``).

    ``snapshot`` takes what the status page shows (``hub status``'s snapshot, workers included).
    """
    api.include_router(build_router(settings, publisher))
    bulk = BulkReplays(lambda outbox_id: publish_row_now(publisher, outbox_id))
    api.include_router(groups.build_router(settings, bulk))
    api.include_router(status_page.build_router(settings, snapshot))
