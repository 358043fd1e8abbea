"""The two tables of a chaos run: the faults injected, and the check's result."""

from __future__ import annotations

from collections import Counter

from rich.table import Table

from bench.chaos.keeper import Keeper
from bench.chaos.nemesis import Nemesis
from bench.chaos.verdict import Verdict
from hub.db import audit

LABELS = {
    "kill_worker": "SIGKILL a worker (main process and pool children)",
    "kill_pool_child": "SIGKILL one pool child",
    "kill_relay": "SIGKILL the outbox relay",
    "kill_api": "SIGKILL the intake API",
    "restart_rabbitmq": "restart RabbitMQ",
    "restart_postgres": "restart PostgreSQL",
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
    table.add_row(
        "processes restarted by the keeper",
        str(sum(restarted.values())),
        ", ".join(f"{name} {n}" for name, n in sorted(restarted.items())),
    )
    table.add_row(
        "processes that died without being killed",
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
    table.add_row("lost (accepted, not finished or not found)", str(verdict.lost), "0")
    table.add_row("effects applied twice", str(verdict.doubled), "0")
    table.add_row(
        "other disagreements (hub reconcile)",
        str(len(verdict.discrepancies) - verdict.problems(("duplicate_effect",))),
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
    return table
