"""``hub failures``, ``hub replay``, ``hub discard``, ``hub breakers``: the 3 a.m. commands."""

from __future__ import annotations

import getpass
import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from hub import bootstrap
from hub.core.failure_groups import GROUP_ID_PATTERN
from hub.core.pipeline import FAILURE_KINDS, STEPS
from hub.db.engine import unit_of_work
from hub.db.models import BreakerState, Failure, Order
from hub.entrypoints.cli.support import err, out, require_services, settings_or_exit
from hub.entrypoints.cli.timeline import print_timeline
from hub.services.failure_groups import FailureGroup, open_groups
from hub.services.orders import order_view
from hub.services.outbox import publish_row_now
from hub.services.replay import (
    MAX_BULK,
    FailureFilter,
    Resolution,
    discard_one,
    find_failures,
    replay_one,
    resolve_many,
)

DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

StepOption = Annotated[str | None, typer.Option("--step", help=" | ".join(STEPS))]
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
    if step is not None and step not in STEPS:
        raise typer.BadParameter(f"{step!r} is not one of {', '.join(STEPS)}", param_hint="--step")
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


def failures_table(rows: list[object], *, title: str) -> Table:

    table = Table(title=title)
    for column in (
        "failure id",
        "order",
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
        table.add_row(
            str(row.id),
            str(row.order_id),
            row.step,
            row.error_kind,
            str(row.http_status or ""),
            row.error_code or "",
            str(row.attempts),
            row.last_failed_at.strftime("%Y-%m-%d %H:%M:%S"),
            row.message[:80],
        )
    return table


def list_failures(
    step: StepOption = None,
    kind: KindOption = None,
    code: CodeOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    group: GroupOption = None,
    state: Annotated[str, typer.Option(help="open | replayed | discarded")] = "open",
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
    if not rows:
        out.print(f"no {state} failures match")
        return
    out.print(failures_table(list(rows), title=f"{len(rows)} {state} failure(s)"))


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
            group.key.code or "",
            group.first_seen.strftime("%Y-%m-%d %H:%M:%S"),
            group.last_seen.strftime("%Y-%m-%d %H:%M:%S"),
            group.key.fingerprint[:60],
            group.sample.message[:60],
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
                f"{failure.state} by {failure.resolved_by} at {failure.resolved_at}: "
                f"{failure.resolution_reason}"
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
    operator: Annotated[str, typer.Option(help="who replays (recorded)")] = getpass.getuser(),
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
            for failure in find_failures(
                session, replace(criteria, state="replayed")
            ) + find_failures(session, replace(criteria, state="discarded")):
                out.print(
                    f"skipped  {failure.id}  already {failure.state} by "
                    f"{failure.resolved_by} at {failure.resolved_at:%Y-%m-%d %H:%M:%S}"
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


def discard(
    ids: Annotated[list[str] | None, typer.Argument(help="failure ids")] = None,
    reason: Annotated[str, typer.Option(help="why (required, recorded)")] = "",
    group: GroupOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show, change nothing")] = False,
    operator: Annotated[str, typer.Option(help="who discards (recorded)")] = getpass.getuser(),
) -> None:
    """Close failures (by id, or a whole --group) without replaying them; orders stay failed."""

    settings = settings_or_exit()
    ids = ids or []
    if bool(ids) == bool(group):
        err.print("[red]say what to discard: failure ids, or --group ID (not both)[/red]")
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
            title = f"dry run: would discard {len(rows)} failure(s)"
            out.print(failures_table(list(rows), title=title) if rows else "nothing to discard")
            return
        chosen = [row.id for row in rows]
    counts = {"discarded": 0, "skipped": 0}
    for result in resolve_many(chosen, discard_one, operator=operator, reason=reason):
        counts[result.outcome] += 1
        out.print(f"{result.outcome:9} {result.failure_id}  order {result.order_id}")
    if group is not None:
        out.print(
            f"discarded {counts['discarded']}, skipped {counts['skipped']} "
            "(already replayed or discarded by someone else)"
        )


def breakers() -> None:
    """The breaker of each downstream system, as every worker sees it."""

    settings = settings_or_exit()
    require_services(settings, rabbitmq=False)
    with unit_of_work() as session:
        rows = session.scalars(select(BreakerState).order_by(BreakerState.system)).all()
    now = datetime.now(UTC)
    window = settings.breaker.window
    table = Table(
        "system", "state", "window calls", "failure rate", "probes", "held", "open since", "next"
    )
    for row in rows:
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
    out.print(table if rows else "no system has failed lately: all breakers closed")
    policy = settings.breaker
    out.print(
        f"opens when {policy.failure_rate:.0%} of at least {policy.min_calls} calls in "
        f"{policy.window:g} s failed, {policy.min_retry_failures} of them retries; rests "
        f"{policy.cooldown:g} s, then {policy.half_open_calls} probes"
    )


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
    cli.add_typer(failures, name="failures")
    cli.command()(replay)
    cli.command()(discard)
    cli.command()(breakers)
