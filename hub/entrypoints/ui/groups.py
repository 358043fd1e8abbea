"""Acting on many failures at once from the page: a failure group, or what the filters show.

Each bulk action has a confirmation page that states how many failures it covers, and posts
the moment that page was shown: only failures that existed then are acted on, so nothing that
arrived while the operator read the page is replayed unseen. Replays go on at a set rate after
the answer (``bulk``); discards are quick row updates and are done before it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from hub.core.failure_groups import GROUP_ID_PATTERN
from hub.db.engine import unit_of_work
from hub.db.models import Failure, Order
from hub.entrypoints.ui.bulk import BulkReplays
from hub.entrypoints.ui.forms import (
    HOME,
    Flash,
    checked_form,
    parse_moment,
    read_filters,
)
from hub.entrypoints.ui.operator_auth import issue_form_token, operator_dependency
from hub.entrypoints.ui.rendering import back, page
from hub.services.failure_groups import FailureGroup, find_group
from hub.services.replay import (
    MAX_BULK,
    FailureFilter,
    Resolution,
    cancel_one,
    close_one,
    count_failures,
    find_failures,
    resolve_many,
)
from hub.settings import Settings

GROUP_ID = re.compile(GROUP_ID_PATTERN)
# Replays a second from the page unless the operator sets another rate (the CLI's default).
DEFAULT_RATE = 5.0
MAX_RATE = 50.0
# discard cancels the orders (their done steps compensated); close ends them as they stand.
ACTIONS = ("replay", "discard", "close")


@dataclass(frozen=True)
class Scope:
    """What a bulk action covers, where its confirmation posts, and where to go back."""

    key: str  # one bulk replay per key at a time
    criteria: FailureFilter
    title: str
    action_url: str
    back_url: str
    # The failures page's filters, carried through the confirmation form.
    hidden: dict[str, str]
    group: FailureGroup | None = None


def _group_scope(group_id: str, action: str) -> Scope:
    with unit_of_work() as session:
        group = find_group(session, group_id)
    return Scope(
        key=f"group:{group_id}",
        criteria=FailureFilter(group=group_id),
        title=f"group {group_id}",
        action_url=f"/ui/groups/{group_id}/{action}",
        back_url=f"/ui/groups/{group_id}",
        hidden={},
        group=group,
    )


def _shown_scope(criteria: FailureFilter, values: dict[str, str], query: str) -> Scope:
    described = ", ".join(f"{name} {value}" for name, value in values.items() if value)
    return Scope(
        key=f"filter:{query}",
        criteria=criteria,
        title=f"the failures shown ({described})" if described else "every open failure",
        action_url="/ui/failures/replay",
        back_url=f"{HOME}?{query}" if query else HOME,
        hidden={name: value for name, value in values.items() if value},
    )


def _count(criteria: FailureFilter) -> int:
    with unit_of_work() as session:
        return count_failures(session, criteria)


def _ids(criteria: FailureFilter) -> list[uuid.UUID]:
    with unit_of_work() as session:
        return [failure.id for failure in find_failures(session, criteria, limit=MAX_BULK)]


def _group_page(group_id: str) -> tuple[FailureGroup, list[Failure], dict[uuid.UUID, str]] | None:
    with unit_of_work() as session:
        group = find_group(session, group_id)
        if group is None:
            return None
        failures = find_failures(session, FailureFilter(group=group_id), limit=MAX_BULK)
        rows = session.execute(
            select(Order.id, Order.external_id).where(Order.id.in_(group.order_ids))
        ).all()
        externals = {order_id: external_id for order_id, external_id in rows}
    return group, failures, externals


def _rate(text: str) -> float | None:
    try:
        rate = float(text)
    except ValueError:
        return None
    return rate if 0.1 <= rate <= MAX_RATE else None


def _as_of(text: str) -> datetime | None:
    try:
        return parse_moment(text)
    except ValueError:
        return None


def _plural(count: int) -> str:
    return f"{count} failure{'' if count == 1 else 's'}"


def build_router(settings: Settings, bulk: BulkReplays) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    operator_required = Depends(operator_dependency(settings))

    def confirmation(request: Request, operator: str, scope: Scope, action: str) -> HTMLResponse:
        # The moment, and the count, are taken together: the post acts on these failures.
        as_of = datetime.now(UTC)
        count = _count(replace(scope.criteria, opened_before=as_of))
        return page(
            request,
            "confirm.html",
            operator=operator,
            scope=scope,
            action=action,
            count=count,
            as_of=as_of.isoformat(),
            rate=DEFAULT_RATE,
            max_rate=MAX_RATE,
            token=issue_form_token(settings, operator),
        )

    def resolve_all(
        scope: Scope, ids: list[uuid.UUID], operator: str, reason: str, action: str
    ) -> Flash:
        chosen = cancel_one if action == "discard" else close_one
        results: list[Resolution] = resolve_many(ids, chosen, operator=operator, reason=reason)
        for result in results:
            if result.outbox_id is not None:  # a cancel's compensations, published now
                bulk.publish(result.outbox_id)
        outcome = "cancelled" if action == "discard" else "closed"
        done = sum(1 for r in results if r.outcome in (outcome, "replayed"))
        refused = sum(1 for r in results if r.outcome == "refused")
        skipped = len(results) - done - refused
        tail = f"; {skipped} already closed by someone else" if skipped else ""
        tail += f"; {refused} refused (see each order)" if refused else ""
        verb = "Cancelled" if action == "discard" else "Closed without compensating"
        return Flash("ok", f"{verb} the orders of {_plural(done)} of {scope.title}{tail}.")

    async def act(form: dict[str, str], operator: str, scope: Scope, action: str) -> Response:
        """Carry out a confirmed bulk action; ``form`` has passed ``checked_form``."""
        as_of = _as_of(form.get("as_of", ""))
        rate = _rate(form.get("rate", str(DEFAULT_RATE)))
        reason = " ".join(form.get("reason", "").split())[:500]
        if as_of is None or rate is None:
            return back(scope.back_url, Flash("error", "The confirmation was garbled; reload it."))
        if action in ("discard", "close") and not reason:
            return back(scope.back_url, Flash("error", "Discard needs a reason; nothing done."))
        ids = await run_in_threadpool(_ids, replace(scope.criteria, opened_before=as_of))
        if not ids:
            gone = f"Nothing to {action}: the failures of {scope.title} are no longer open."
            return back(HOME, Flash("info", gone))
        confirmed = form.get("expected", "")
        closed = int(confirmed) - len(ids) if confirmed.isdigit() else 0
        meanwhile = f" ({closed} of those confirmed were closed meanwhile)" if closed > 0 else ""
        if action in ("discard", "close"):
            flash = await run_in_threadpool(resolve_all, scope, ids, operator, reason, action)
            return back(HOME, flash)
        running = bulk.start(
            scope.key,
            ids,
            operator=operator,
            reason=f"replayed {scope.title} from the failures page",
            per_second=rate,
        )
        if running is not None:
            return back(
                HOME,
                Flash(
                    "info",
                    f"A replay of {scope.title} is already under way (started by "
                    f"{running.operator} at {running.started_at:%H:%M:%S} UTC, "
                    f"{_plural(running.total)}); nothing more done.",
                ),
            )
        seconds = max(1, round(len(ids) / rate))
        return back(
            HOME,
            Flash(
                "ok",
                f"Replaying {_plural(len(ids))} of {scope.title}{meanwhile} at {rate:g} a second "
                f"(about {seconds} s); each resumes its order at the failed step.",
            ),
        )

    @router.get("/ui/groups/{group_id}")
    async def group_page(
        group_id: str, request: Request, operator: str = operator_required
    ) -> HTMLResponse:
        found = await run_in_threadpool(_group_page, group_id) if GROUP_ID.match(group_id) else None
        if found is None:
            return page(request, "no_group.html", 404, operator=operator, group_id=group_id)
        group, failures, externals = found
        here = f"/ui/groups/{group_id}"
        return page(
            request,
            "group.html",
            operator=operator,
            group=group,
            failures=failures,
            externals=externals,
            token=issue_form_token(settings, operator),
            here=here,
        )

    @router.get("/ui/groups/{group_id}/{action}")
    async def confirm_group(
        group_id: str, action: str, request: Request, operator: str = operator_required
    ) -> HTMLResponse:
        if not GROUP_ID.match(group_id) or action not in ACTIONS:
            return page(request, "no_group.html", 404, operator=operator, group_id=group_id)
        scope = await run_in_threadpool(_group_scope, group_id, action)
        return await run_in_threadpool(confirmation, request, operator, scope, action)

    @router.post("/ui/groups/{group_id}/{action}")
    async def act_on_group(
        group_id: str, action: str, request: Request, operator: str = operator_required
    ) -> Response:
        if not GROUP_ID.match(group_id) or action not in ACTIONS:
            return page(request, "no_group.html", 404, operator=operator, group_id=group_id)
        form = await checked_form(request, settings, operator)
        if isinstance(form, Response):
            return form
        scope = await run_in_threadpool(_group_scope, group_id, action)
        return await act(form, operator, scope, action)

    @router.get("/ui/failures/replay")
    async def confirm_shown(request: Request, operator: str = operator_required) -> Response:
        filters = read_filters(request.query_params)
        if filters.criteria is None:
            return back(
                f"{HOME}?{filters.query_string()}", Flash("error", "Fix the filters first.")
            )
        scope = _shown_scope(filters.criteria, filters.values, filters.query_string())
        return await run_in_threadpool(confirmation, request, operator, scope, "replay")

    @router.post("/ui/failures/replay")
    async def replay_shown(request: Request, operator: str = operator_required) -> Response:
        form = await checked_form(request, settings, operator)
        if isinstance(form, Response):
            return form
        filters = read_filters(form)
        if filters.criteria is None:
            return back(HOME, Flash("error", "Fix the filters first; nothing done."))
        scope = _shown_scope(filters.criteria, filters.values, filters.query_string())
        return await act(form, operator, scope, "replay")

    return router
