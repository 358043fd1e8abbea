"""Where the CPU goes during a run: seconds per part of the stack, per order.

On a two-core machine the figures are set by CPU, so this accounting is the profile of a run
at the level of processes: the stack's own children (by role), PostgreSQL, RabbitMQ and the
bench itself (the senders). PostgreSQL and RabbitMQ are the machine's: whatever else uses them
meanwhile is counted too.
"""

from __future__ import annotations

import os
import re

import psutil

from bench.stack import Stack

Snapshot = dict[int, tuple[str, float]]


def _role(name: str) -> str:
    # hubbench-worker2 -> worker, hubbare-1 -> bare worker, relay -> relay
    if "worker" in name:
        return "worker"
    if name.startswith("hubbare"):
        return "bare worker"
    return re.sub(r"\d+$", "", name)


def snapshot(stack: Stack) -> Snapshot:
    """CPU seconds (user + system) so far of every process that matters, by pid."""
    seen: Snapshot = {}

    def add(process: psutil.Process, role: str) -> None:
        try:
            times = process.cpu_times()
            seen[process.pid] = (role, times.user + times.system)
        except psutil.Error:
            pass

    for child in list(stack.supervisor.children):
        try:
            main = psutil.Process(child.popen.pid)
        except psutil.Error:
            continue
        role = _role(child.name)
        add(main, role)
        for sub in main.children(recursive=True):
            add(sub, f"{role} pool" if role.endswith("worker") else role)
    for process in psutil.process_iter(["name", "username"]):
        if process.info["username"] == "postgres":
            add(process, "postgresql")
        elif (process.info["name"] or "").startswith("beam"):
            add(process, "rabbitmq")
    add(psutil.Process(os.getpid()), "bench (senders)")
    return seen


def per_order(before: Snapshot, after: Snapshot, orders: int) -> dict[str, float]:
    """Milliseconds of CPU per order, by role, between two snapshots (biggest first)."""
    spent: dict[str, float] = {}
    for pid, (role, seconds) in after.items():
        spent[role] = spent.get(role, 0.0) + seconds - before.get(pid, (role, 0.0))[1]
    ranked = sorted(spent.items(), key=lambda item: -item[1])
    return {role: round(1000 * s / orders, 2) for role, s in ranked if s > 0}
