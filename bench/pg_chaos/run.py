"""The schedule of a PostgreSQL chaos run: SIGKILL the primary, let Patroni promote the
synchronous standby, start the old primary again (it rejoins as a standby, rewound); then stop
the new primary cleanly (a switchover) and start it again. Each loss with its figures."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.chaos.nemesis import Fault
from bench.cluster_chaos.stalls import Window
from bench.pg_cluster.control import PgCluster


@dataclass
class Loss:
    label: str
    member: str
    at: float  # epoch seconds of the loss
    at_monotonic: float
    promoted: str = ""
    promoted_monotonic: float = 0.0
    without_primary_s: float = 0.0  # from the loss until Patroni reported a new leader
    rejoined_s: float = 0.0  # from the start of the lost member until the cluster was healthy
    rewound: bool = False


@dataclass
class PrimaryLosses:
    cluster: PgCluster
    faults: list[Fault] = field(default_factory=list)
    losses: list[Loss] = field(default_factory=list)
    _started: float = 0.0
    _load_start: float = 0.0
    _load_end: float = 0.0

    def _note(self, kind: str, detail: str, log: Callable[[str], object]) -> None:
        fault = Fault(round(time.monotonic() - self._started, 1), kind, detail)
        self.faults.append(fault)
        log(f"t={fault.at:5.1f}s {kind}: {detail}")

    def _lose(self, how: str, *, down: float, log: Callable[[str], object]) -> None:
        cluster = self.cluster
        leader = cluster.wait_leader(timeout=60)
        lost_at = time.monotonic()
        loss = Loss(f"{how} {leader.name} (primary)", leader.name, time.time(), lost_at)
        if how == "kill -9":
            self._note("kill", f"SIGKILL {leader.name}: Patroni and PostgreSQL, the primary", log)
            cluster.kill(leader)
        else:
            self._note("stop", f"{leader.name} stopped cleanly (SIGTERM to Patroni)", log)
            cluster.stop(leader)
        promoted = cluster.wait_leader(other_than=leader, timeout=90)
        loss.promoted = promoted.name
        loss.promoted_monotonic = time.monotonic()
        loss.without_primary_s = round(time.monotonic() - lost_at, 1)
        self._note("promoted", f"{promoted.name} after {loss.without_primary_s:.1f} s", log)
        self.losses.append(loss)
        time.sleep(max(0.0, down - (time.monotonic() - lost_at)))
        restarted = time.monotonic()
        cluster.start(leader)
        cluster.wait_healthy(timeout=180)
        loss.rejoined_s = round(time.monotonic() - restarted, 1)
        loss.rewound = cluster.rewound(leader)
        rewind = "rewound with pg_rewind" if loss.rewound else "no rewind needed"
        self._note(
            "rejoined", f"{leader.name} a standby again after {loss.rejoined_s} s, {rewind}", log
        )

    def run(
        self,
        *,
        warmup: float,
        down: float,
        between: float,
        tail: float,
        log: Callable[[str], object] = print,
    ) -> None:
        self._started = time.monotonic()
        self._load_start = time.time()
        time.sleep(warmup)
        self._lose("kill -9", down=down, log=log)
        time.sleep(between)
        self._lose("stop", down=down, log=log)
        time.sleep(tail)
        self._load_end = time.time()

    def windows(self) -> list[Window]:
        """Before the first loss (the baseline), then from each loss to the next one."""
        first = self.losses[0].at
        spans = [Window("no fault (baseline)", self._load_start + 2, first)]
        ends = [loss.at for loss in self.losses[1:]] + [self._load_end]
        spans += [
            Window(loss.label, loss.at, end) for loss, end in zip(self.losses, ends, strict=True)
        ]
        return spans
