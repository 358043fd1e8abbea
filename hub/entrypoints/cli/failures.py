"""``hub failures``, ``hub replay``, ``hub discard``, ``hub breakers``: the 3 a.m. commands."""

from __future__ import annotations

import getpass
import re
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from hub import bootstrap
from hub.core.failure_groups import GROUP_ID_PATTERN
from hub.core.registry import REGISTRY
from hub.core.statuses import FAILURE_KINDS
from hub.db import limits
from hub.db.engine import unit_of_work
from hub.db.models import BreakerState, Failure, Order
from hub.entrypoints.cli.plain import plain
from hub.entrypoints.cli.support import err, out, require_services, settings_or_exit
from hub.entrypoints.cli.timeline import print_timeline
from hub.services.failure_groups import FailureGroup, open_groups
from hub.services.orders import external_ids, order_view
from hub.services.outbox import publish_row_now
from hub.services.replay import (
    MAX_BULK,
    Action,
    FailureFilter,
    Resolution,
    cancel_one,
    close_one,
    find_failures,
    replay_one,
    resolve_many,
)
from hub.settings import Settings

OPERATOR_CHARS = 128
DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

StepOption = Annotated[str | None, typer.Option("--step", help=" | ".join(REGISTRY.step_names))]
KindOption = Annotated[
    str | None, typer.Option("--kind", "--error", help=" | ".join(FAILURE_KINDS))
]
CodeOption = Annotated[str | None, typer.Option("--code", help="downstream error code")]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="30m, 2h, 1d or an ISO time (last failure)")
]
UntilOption = Annotated[str | None, typer.Option("--until", help="ISO time or 30m/2h ago")]
GroupOption = Annotated[
    str | None, typer.Option("--group", help="a failure group's id (hub failures groups)")
]
GROUP_ID = re.compile(GROUP_ID_PATTERN)


def operator_name(value: str) -> str:
    """--operator as recorded (resolved_by holds 128 characters): refused, never cut or crashed."""
    if not value.strip() or len(value) > OPERATOR_CHARS or "\x00" in value:
        raise typer.BadParameter(
            f"1 to {OPERATOR_CHARS} characters, no NUL", param_hint="--operator"
        )
    return value


def parse_when(text: str | None, *, option: str) -> datetime | None:
    """'2h' means two hours ago; anything else must be an ISO 8601 time (UTC if naive)."""
    if text is None:
        return None
    match = DURATION.match(text.strip())
    if match:
        amount, unit = match.groups()
        return datetime.now(UTC) - timedelta(**{UNITS[unit]: int(amount)})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither a duration like 30m/2h/1d nor an ISO time", param_hint=option
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_ids(values: list[str]) -> list[uuid.UUID]:
    try:
        return [uuid.UUID(value) for value in values]
    except ValueError as exc:
        raise typer.BadParameter(f"not a failure id: {exc}", param_hint="ID") from None


def build_filter(
    *,
    ids: list[str],
    step: str | None,
    kind: str | None,
    code: str | None,
    since: str | None,
    until: str | None,
    group: str | None = None,
    state: str = "open",
) -> FailureFilter:

    if group is not None and not GROUP_ID.match(group):
        raise typer.BadParameter(
            f"{group!r} is not a group id (12 hex digits, from hub failures groups)",
            param_hint="--group",
        )
    if step is not None and step not in REGISTRY.step_names:
        raise typer.BadParameter(
            f"{step!r} is not one of {', '.join(REGISTRY.step_names)}", param_hint="--step"
        )
    if kind is not None and kind not in FAILURE_KINDS:
        raise typer.BadParameter(
            f"{kind!r} is not one of {', '.join(FAILURE_KINDS)}", param_hint="--kind"
        )
    return FailureFilter(
        ids=parse_ids(ids),
        step=step,
        error_kind=kind,
        code=code,
        since=parse_when(since, option="--since"),
        until=parse_when(until, option="--until"),
        state=state,
        group=group,
    )


def failures_table(
    rows: list[object], *, title: str, externals: Mapping[uuid.UUID, str] | None = None
) -> Table:
    """One line per failure; with ``externals``, the order's external id beside its id (the id
    the CRM and the sender know it by, which ``hub timeline`` and ``reconcile --order`` take)."""
    table = Table(title=title)
    columns = ["failure id", "order", *(["external id"] if externals is not None else [])]
    for column in (
        *columns,
        "step",
        "kind",
        "http",
        "code",
        "attempts",
        "last failed",
        "message",
    ):
        table.add_column(column, overflow="fold")
    for row in rows:
        assert isinstance(row, Failure)
        # Code and message are a downstream's words: printed as data (hub.entrypoints.cli.plain).
        external = [] if externals is None else [plain(externals.get(row.order_id, ""))]
        table.add_row(
            str(row.id),
            str(row.order_id),
            *external,
            row.step,
            row.error_kind,
            str(row.http_status or ""),
            plain(row.error_code),
            str(row.attempts),
            row.last_failed_at.strftime("%Y-%m-%d %H:%M:%S"),
            plain(row.message[:80]),
        )
    return table


def list_failures(
    step: StepOption = None,
    kind: KindOption = None,
    code: CodeOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    group: GroupOption = None,
    state: Annotated[
        str, typer.Option(help="open | replayed | discarded | cancelled | closed")
    ] = "open",
    limit: Annotated[int, typer.Option(help="at most this many")] = 200,
) -> None:
    """List failures (open ones unless --state says otherwise), oldest first."""

    settings = settings_or_exit()
    require_services(settings, rabbitmq=False)
    criteria = build_filter(
        ids=[], step=step, kind=kind, code=code, since=since, until=until, group=group, state=state
    )
    with unit_of_work() as session:
        rows = find_failures(session, criteria, limit=limit)
        externals = external_ids(session, (row.order_id for row in rows))
    if not rows:
        out.print(f"no {state} failures match")
        return
    title = f"{len(rows)} {state} failure(s)"
    out.print(failures_table(list(rows), title=title, externals=externals))


def groups_table(groups: list[FailureGroup]) -> Table:
    table = Table(title=f"{len(groups)} failure group(s), {sum(g.count for g in groups)} failures")
    for column in ("group", "failures", "step", "kind", "http", "code", "first seen", "last seen"):
        table.add_column(column, overflow="fold")
    table.add_column("cause (ids <id>, numbers #)", overflow="fold")
    table.add_column("sample", overflow="fold")
    for group in groups:
        table.add_row(
            group.group_id,
            str(group.count),
            group.key.step,
            group.key.kind,
            str(group.sample.http_status or ""),
            plain(group.key.code),
            group.first_seen.strftime("%Y-%m-%d %H:%M:%S"),
            group.last_seen.strftime("%Y-%m-%d %H:%M:%S"),
            plain(group.key.fingerprint[:60]),
            plain(group.sample.message[:60]),
        )
    return table


def list_groups(
    step: StepOption = None,
    kind: KindOption = None,
    code: CodeOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
) -> None:
    """Open failures grouped by cause (step, kind, code, message with ids and numbers masked)."""

    settings = settings_or_exit()
    require_services(settings, rabbitmq=False)
    criteria = build_filter(ids=[], step=step, kind=kind, code=code, since=since, until=until)
    with unit_of_work() as session:
        groups = open_groups(session, criteria)
    if not groups:
        out.print("no open failures match")
        return
    out.print(groups_table(groups))
    out.print(
        "a group's failures and orders: hub failures list --group ID; "
        "act on all of them: hub replay --group ID [--dry-run], hub discard --group ID --reason ..."
    )


def show_failure(failure_id: Annotated[str, typer.Argument(help="failure id")]) -> None:
    """One failure with its order's whole timeline."""

    settings = settings_or_exit()
    require_services(settings, rabbitmq=False)
    [fid] = parse_ids([failure_id])
    with unit_of_work() as session:
        failure = session.get(Failure, fid)
        if failure is None:
            err.print(f"[red]no failure {failure_id}[/red]")
            raise typer.Exit(1)
        order = session.get(Order, failure.order_id)
        assert order is not None
        view = order_view(session, order)
        out.print(failures_table([failure], title=f"failure ({failure.state})"))
        if failure.resolved_by:
            out.print(
                plain(
                    f"{failure.state} by {failure.resolved_by} at {failure.resolved_at}: "
                    f"{failure.resolution_reason}"
                )
            )

    print_timeline(view)


def _publish(resolution: Resolution) -> None:
    """Publish a replay's outbox row now; if the broker is away the relay does it later."""
    if resolution.outbox_id is None:
        return

    settings = settings_or_exit()
    publisher = bootstrap.chain_publisher(settings)
    publish_row_now(publisher, resolution.outbox_id)


def replay(
    ids: Annotated[list[str] | None, typer.Argument(help="failure ids")] = None,
    step: StepOption = None,
    kind: KindOption = None,
    code: CodeOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    group: GroupOption = None,
    all_: Annotated[bool, typer.Option("--all", help="every open failure")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show, change nothing")] = False,
    rate: Annotated[float, typer.Option(help="replays per second, at most", min=0.01)] = 5.0,
    operator: Annotated[
        str, typer.Option(help="who replays (recorded)", callback=operator_name)
    ] = getpass.getuser(),
    reason: Annotated[str, typer.Option(help="why (recorded)")] = "replayed from the CLI",
) -> None:
    """Replay failures: by id, by filter, or --all; each resumes its chain at the failed step."""

    settings = settings_or_exit()
    ids = ids or []
    if not (ids or step or kind or code or since or until or group or all_):
        err.print(
            "[red]say what to replay: failure ids, --group, --step/--kind/--code/--since/--until, "
            "or --all[/red]"
        )
        raise typer.Exit(2)
    require_services(settings, rabbitmq=not dry_run)
    criteria = build_filter(
        ids=ids, step=step, kind=kind, code=code, since=since, until=until, group=group
    )
    with unit_of_work() as session:
        rows = find_failures(session, criteria, limit=MAX_BULK)
        chosen = [row.id for row in rows]
        if criteria.ids:
            # Named failures that are no longer open are reported, not silently ignored.
            closed = set(criteria.ids) - set(chosen)
            resolved = [
                failure
                for state in ("replayed", "discarded", "cancelled", "closed")
                for failure in find_failures(session, replace(criteria, state=state))
            ]
            for failure in resolved:
                out.print(
                    plain(
                        f"skipped  {failure.id}  already {failure.state} by "
                        f"{failure.resolved_by} at {failure.resolved_at:%Y-%m-%d %H:%M:%S}"
                    )
                )
                closed.discard(failure.id)
            if closed:
                err.print(f"[red]no such failure: {', '.join(map(str, sorted(closed)))}[/red]")
                raise typer.Exit(1)
        if dry_run or not rows:
            title = f"dry run: would replay {len(rows)} failure(s)"
            out.print(failures_table(list(rows), title=title) if rows else "nothing to replay")
            return
    counts = {"replayed": 0, "skipped": 0}

    def each(result: Resolution) -> None:
        counts[result.outcome] += 1
        _publish(result)
        out.print(
            f"{result.outcome:8} {result.failure_id}  order {result.order_id} from {result.step}"
        )

    resolve_many(
        chosen, replay_one, operator=operator, reason=reason, per_second=rate, on_each=each
    )
    out.print(
        f"replayed {counts['replayed']}, skipped {counts['skipped']} "
        "(already replayed or discarded by someone else)"
    )


ACTIONS: dict[str, tuple[str, Action]] = {
    # verb shown -> (outcome counted, action)
    "cancel": ("cancelled", cancel_one),
    "close": ("closed", close_one),
}


def _resolve(
    verb: str,
    ids: list[str],
    *,
    group: str | None,
    reason: str,
    dry_run: bool,
    operator: str,
) -> None:
    """Cancel or close the orders of failures named by id or by --group, each in its own
    transaction; a cancel's compensations are published at once (the relay otherwise)."""
    settings = settings_or_exit()
    if bool(ids) == bool(group):
        err.print(f"[red]say what to {verb}: failure ids, or --group ID (not both)[/red]")
        raise typer.Exit(2)
    if not reason.strip():
        raise typer.BadParameter("a reason is required", param_hint="--reason")
    require_services(settings, rabbitmq=False)
    criteria = build_filter(
        ids=ids, step=None, kind=None, code=None, since=None, until=None, group=group
    )
    chosen = list(criteria.ids)
    if dry_run or group is not None:
        with unit_of_work() as session:
            rows = find_failures(session, criteria, limit=MAX_BULK)
        if dry_run or not rows:
            title = f"dry run: would {verb} {len(rows)} failure(s)"
            out.print(failures_table(list(rows), title=title) if rows else f"nothing to {verb}")
            return
        chosen = [row.id for row in rows]
    outcome, action = ACTIONS[verb]
    counts = {outcome: 0, "replayed": 0, "skipped": 0, "refused": 0}
    for result in resolve_many(chosen, action, operator=operator, reason=reason):
        counts[result.outcome] += 1
        _publish(result)
        why = f"  ({result.detail})" if result.detail else ""
        out.print(f"{result.outcome:9} {result.failure_id}  order {result.order_id}{why}")
    if group is not None or len(chosen) > 1:
        out.print(
            f"{outcome} {counts[outcome]}, skipped {counts['skipped']} (already resolved by "
            f"someone else), refused {counts['refused']}"
            + (f", compensations replayed {counts['replayed']}" if counts["replayed"] else "")
        )
    if counts["refused"]:
        raise typer.Exit(1)


def discard(
    ids: Annotated[list[str] | None, typer.Argument(help="failure ids")] = None,
    reason: Annotated[str, typer.Option(help="why (required, recorded)")] = "",
    group: GroupOption = None,
    compensate: Annotated[
        bool,
        typer.Option(
            "--compensate/--no-compensate",
            help="cancel the orders, undoing their done steps (default), or close them as they "
            "stand",
        ),
    ] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show, change nothing")] = False,
    operator: Annotated[
        str, typer.Option(help="who discards (recorded)", callback=operator_name)
    ] = getpass.getuser(),
) -> None:
    """Give up on failed orders (by failure id, or a whole --group): cancel them, their done
    steps compensated in reverse order (default), or --no-compensate to close them as they
    stand (hub failures cancel / close do the same)."""
    verb = "cancel" if compensate else "close"
    _resolve(verb, ids or [], group=group, reason=reason, dry_run=dry_run, operator=operator)


def cancel_failures(
    ids: Annotated[list[str] | None, typer.Argument(help="failure ids")] = None,
    reason: Annotated[str, typer.Option(help="why (required, recorded)")] = "",
    group: GroupOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show, change nothing")] = False,
    operator: Annotated[
        str, typer.Option(help="who cancels (recorded)", callback=operator_name)
    ] = getpass.getuser(),
) -> None:
    """Cancel the failures' orders: their done steps are compensated, last first. For a
    compensation's own failure, try that compensation again."""
    _resolve("cancel", ids or [], group=group, reason=reason, dry_run=dry_run, operator=operator)


def close_failures(
    ids: Annotated[list[str] | None, typer.Argument(help="failure ids")] = None,
    reason: Annotated[str, typer.Option(help="why (required, recorded)")] = "",
    group: GroupOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show, change nothing")] = False,
    operator: Annotated[
        str, typer.Option(help="who closes (recorded)", callback=operator_name)
    ] = getpass.getuser(),
) -> None:
    """Close the failures' orders as they stand, without compensating (what their steps did
    downstream stays): the order ends closed, audited with the reason."""
    _resolve("close", ids or [], group=group, reason=reason, dry_run=dry_run, operator=operator)


def breakers() -> None:
    """The breaker of each downstream system, as every worker sees it."""

    settings = settings_or_exit()
    require_services(settings, rabbitmq=False)
    with unit_of_work() as session:
        stored = {row.system: row for row in session.scalars(select(BreakerState)).all()}
        limit_views = limits.views(session, settings.limits_of, settings.throttle)
    now = datetime.now(UTC)
    window = settings.breaker.window
    table = Table(
        "system", "state", "window calls", "failure rate", "probes", "holds", "open since", "next"
    )
    # Every system this hub calls, with a row or not: a system that never failed has none yet.
    systems = sorted({REGISTRY.system_of(step) for step in settings.pipeline.steps} | set(stored))
    for system in systems:
        row = stored.get(system) or BreakerState(system=system, state="closed", held=0)
        counting = row.window_started_at is not None and (
            (now - row.window_started_at).total_seconds() < window
        )
        calls, failures = (row.calls, row.failures) if counting else (0, 0)
        table.add_row(
            row.system,
            row.state,
            str(calls),
            f"{failures / calls:.0%}" if calls else "-",
            f"{row.probe_successes} ok / {row.probe_failures} failed of {row.probes}"
            if row.state == "half_open"
            else "-",
            str(row.held),
            _moment(row.opened_at, now),
            _moment(row.retry_at, now) if row.state != "closed" else "",
        )
    out.print(table)
    out.print(
        "holds: how many times a step was turned back to wait in RabbitMQ since the breaker "
        "last opened (one step held through three rest periods counts three; not the orders "
        "waiting); a system without a row never failed: closed"
    )
    policy = settings.breaker
    out.print(
        f"opens when {policy.failure_rate:.0%} of at least {policy.min_calls} calls in "
        f"{policy.window:g} s failed, {policy.min_retry_failures} of them retries; rests "
        f"{policy.cooldown:g} s, then {policy.half_open_calls} probes"
    )
    _print_limits(settings, limit_views, now)


def _print_limits(settings: Settings, views: Mapping[str, limits.LimitView], now: datetime) -> None:
    """Each system's limits: cooling after a 429, the rate in force, slots held, steps waiting."""
    table = Table("system", "limits", "cooling until", "rate now", "in flight", "waiting", "429s")
    for system in REGISTRY.systems:
        configured = settings.limits_of(system)
        view = views.get(system)
        if view is None and not configured.configured:
            continue
        shown = [
            f"{configured.max_in_flight} in flight" if configured.max_in_flight else "",
            f"{configured.rate:g}/s" if configured.rate else "",
        ]
        rate = view.rate_in_force if view else configured.rate
        table.add_row(
            system,
            ", ".join(part for part in shown if part) or "none",
            _moment(view.cooling_until, now) if view and view.cooling else "",
            f"{rate:.1f}/s" if rate is not None else "-",
            str(view.in_flight) if view else "0",
            str(view.waiting) if view else "0",
            str(view.throttled) if view else "0",
        )
    if table.row_count:
        out.print(table)


def _moment(at: datetime | None, now: datetime) -> str:
    """A time to the second, and how far it is from now: what an operator reads first."""
    if at is None:
        return ""
    seconds = round((at - now).total_seconds())
    relative = f"in {seconds} s" if seconds >= 0 else f"{-seconds} s ago"
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} ({relative})"


def register(cli: typer.Typer) -> None:
    failures = typer.Typer(help="List and inspect failures.", no_args_is_help=True)
    failures.command("list")(list_failures)
    failures.command("groups")(list_groups)
    failures.command("show")(show_failure)
    failures.command("cancel")(cancel_failures)
    failures.command("close")(close_failures)
    cli.add_typer(failures, name="failures")
    cli.command()(replay)
    cli.command()(discard)
    cli.command()(breakers)
