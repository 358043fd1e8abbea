"""The two tables of a chaos run: the faults injected, and the check's result."""

from __future__ import annotations

from collections import Counter

from rich.table import Table

from bench.chaos.keeper import Keeper
from bench.chaos.nemesis import Nemesis
from bench.chaos.verdict import DANGLING, DOUBLE, Verdict
from hub.db import audit

LABELS = {
    "kill_worker": "SIGKILL a worker (its threads' calls and slots with it)",
    "stop_worker": "SIGTERM a worker (a deploy's warm shutdown)",
    "kill_relay": "SIGKILL the outbox relay",
    "kill_api": "SIGKILL the intake API",
    "restart_rabbitmq": "restart RabbitMQ (the run's own node)",
    "restart_postgres": "restart PostgreSQL (the run's own cluster)",
    "flap": "downstream system flaps",
}


def faults_table(nemesis: Nemesis, keeper: Keeper) -> Table:
    table = Table("fault", "injected", "examples", title="faults injected")
    by_kind: dict[str, list[str]] = {}
    for fault in nemesis.faults:
        by_kind.setdefault(fault.kind, []).append(f"t={fault.at:.0f}s {fault.detail}")
    for kind, label in LABELS.items():
        seen = by_kind.get(kind, [])
        table.add_row(
            label, str(len(seen)), "; ".join(seen[:3]) + (" ..." if len(seen) > 3 else "")
        )
    restarted = Counter(keeper.restarts)
    killed = sum(len(by_kind.get(kind, [])) for kind in ("kill_worker", "kill_relay", "kill_api"))
    # A worker stopped by SIGTERM exits by itself (its SIGKILL after the timeout is the same stop).
    killed += sum(
        1 for fault in nemesis.faults if fault.kind == "stop_worker" and "SIGTERM" in fault.detail
    )
    table.add_row(
        "processes restarted by the keeper",
        str(sum(restarted.values())),
        ", ".join(f"{name} {n}" for name, n in sorted(restarted.items())),
    )
    table.add_row(
        "processes that died without being killed or stopped",
        str(max(0, sum(restarted.values()) - killed)),
        "broker and database restarts are ridden out in place",
    )
    return table


def verdict_table(verdict: Verdict) -> Table:
    table = Table("check", "found", "expected", title="exactly-once check")
    statuses = verdict.statuses
    failed = statuses["failed"]
    table.add_row("orders accepted", str(verdict.accepted), "")
    table.add_row("completed", str(statuses["completed"]), "")
    table.add_row("failed, with an open failure record", str(failed), "any, each with its reason")
    cancels = verdict.cancels
    if cancels:
        table.add_row("cancelled", str(statuses["cancelled"]), "every cancel taken")
        table.add_row(
            "cancels sent: taken (202) / already completed (409) / unanswered",
            f"{cancels['taken']} / {cancels['already_completed']} / {cancels['unanswered']}",
            "",
        )
        table.add_row(
            "cancels that found a step in flight", str(cancels["found_a_step_in_flight"]), "any"
        )
        table.add_row("cancel taken, order not ended cancelled", str(verdict.not_cancelled), "0")
    table.add_row("lost (accepted, not finished or not found)", str(verdict.lost), "0")
    table.add_row("effects (or compensations) applied twice", str(verdict.doubled), "0")
    table.add_row(
        "dangling (effect live for a cancelled order, compensation without effect)",
        str(verdict.dangling),
        "0",
    )
    counted = (*DOUBLE, *DANGLING)
    table.add_row(
        "other disagreements (hub reconcile)",
        str(len(verdict.discrepancies) - verdict.problems(counted)),
        "0",
    )
    table.add_row(
        "work queues (ready messages)",
        ", ".join(f"{q.rsplit('.', 1)[-1]} {n}" for q, n in verdict.queue_depths.items()),
        "all 0",
    )
    table.add_row(
        "duplicate deliveries absorbed (step.skipped)",
        str(verdict.events[audit.STEP_SKIPPED]),
        "any",
    )
    table.add_row(
        "retries scheduled / deferred by the breaker",
        (f"{verdict.events[audit.RETRY_SCHEDULED]} / {verdict.events[audit.STEP_DEFERRED]}"),
        "any",
    )
    table.add_row("seconds to settle after the load", f"{verdict.settle_seconds:.0f}", "")
    table.add_row("result", "PASSED" if verdict.passed else "FAILED", "PASSED")
    for item in verdict.discrepancies[:20]:
        table.add_row(f"  {item.problem}", f"{item.order_id} {item.step}", item.detail)
    for problem in verdict.ledger[:20]:
        table.add_row(
            f"  ledgers: {problem.problem}", f"{problem.order_id} {problem.step}", problem.detail
        )
    return table


def verdict_line(verdict: Verdict) -> str:
    """The run in one line, as docs/reliability.md quotes it."""
    statuses = verdict.statuses
    return (
        f"{'PASSED' if verdict.passed else 'FAILED'}: {verdict.accepted} orders accepted, "
        f"{statuses['completed']} completed, {statuses['failed']} failed, "
        f"{statuses['cancelled']} cancelled ({verdict.cancels['taken']} cancels taken, "
        f"{verdict.cancels['found_a_step_in_flight']} with a step in flight); "
        f"{verdict.lost} lost, {verdict.doubled} twice, {verdict.dangling} dangling"
    )
