"""The schedule of a cluster chaos run: kill -9 the work queues' leader, restart it, then stop
another node cleanly and restart it; each fault with its time and its window for the stalls."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.chaos.nemesis import Fault
from bench.cluster.control import Cluster
from bench.cluster.queues import list_queues, main_leader
from bench.cluster_chaos.stalls import Window
from hub.broker.topology import Topology
from hub.core.registry import REGISTRY


@dataclass
class NodeLosses:
    cluster: Cluster
    prefix: str
    faults: list[Fault] = field(default_factory=list)
    # (label, epoch of the loss); the windows run from one loss to the next, or the load's end.
    _losses: list[tuple[str, float]] = field(default_factory=list)
    _started: float = 0.0
    _load_start: float = 0.0
    _load_end: float = 0.0

    @property
    def work_queues(self) -> list[str]:
        return [Topology(self.prefix).queue_name(step) for step in REGISTRY.step_names]

    def replicas(self) -> dict[str, Any]:
        """The hub's quorum queues and Celery's delayed ones: how many, on how many nodes each,
        and how many each node leads (what ``rabbitmqctl list_queues`` says)."""
        ours = (self.prefix + ".", "celery_delayed_")
        infos = [i for i in list_queues(self.cluster) if i.name.startswith(ours)]
        return {
            "queues": len(infos),
            "quorum": sum(1 for i in infos if i.type == "quorum"),
            "members": dict(Counter(len(i.members) for i in infos)),
            "leaders": dict(sorted(Counter(i.leader.split("@")[0] for i in infos).items())),
            "work_queue_leaders": {
                i.name: i.leader.split("@")[0] for i in infos if i.name in self.work_queues
            },
        }

    def _note(self, kind: str, detail: str, log: Callable[[str], object]) -> None:
        fault = Fault(round(time.monotonic() - self._started, 1), kind, detail)
        self.faults.append(fault)
        log(f"t={fault.at:5.1f}s {kind}: {detail}")

    def run(
        self,
        *,
        warmup: float,
        down: float,
        between: float,
        tail: float,
        log: Callable[[str], object] = print,
    ) -> None:
        layout = self.cluster.layout
        self._started = time.monotonic()
        self._load_start = time.time()
        time.sleep(warmup)

        leader = layout.node(main_leader(self.cluster, self.work_queues))
        self._losses.append((f"kill -9 {leader.short} (leader)", time.time()))
        self.cluster.kill(leader)
        self._note("kill", f"SIGKILL {leader.name}, leader of the work queues", log)
        time.sleep(down)
        took = self.cluster.restart(leader)
        self.cluster.wait_members(layout.size)
        self._note("restart", f"{leader.name} answering after {took:.1f} s, rejoined", log)
        time.sleep(between)

        # Another node than the one just killed: the work queues' leader now, if that is not it.
        now_leader = main_leader(self.cluster, self.work_queues)
        other = layout.node(now_leader) if now_leader != leader.name else None
        if other is None:
            other = next(n for n in layout.nodes if n.name != leader.name)
        self._losses.append((f"stop {other.short}", time.time()))
        self.cluster.stop(other)
        self._note("stop", f"{other.name} stopped cleanly (rabbitmqctl stop)", log)
        time.sleep(down)
        took = self.cluster.restart(other)
        self.cluster.wait_members(layout.size)
        self._note("restart", f"{other.name} answering after {took:.1f} s, rejoined", log)
        time.sleep(tail)
        self._load_end = time.time()

    def windows(self) -> list[Window]:
        """Before the first loss (the baseline), then from each loss to the next one."""
        first = self._losses[0][1]
        spans = [Window("no fault (baseline)", self._load_start + 2, first)]
        ends = [t for _, t in self._losses[1:]] + [self._load_end]
        spans += [Window(label, t, end) for (label, t), end in zip(self._losses, ends, strict=True)]
        return spans
