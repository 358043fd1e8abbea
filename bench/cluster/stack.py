"""The hub's processes on a cluster: each worker with a different first node in its URL.

Everything else is ``hub.demo.stack.HubStack`` (sandbox, relay, API), which reads
HUB_BROKER_URL from the environment: the failover list starting at node 1.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from bench.cluster.layout import Layout
from bench.stack import Stack
from hub.demo.processes import Child


@dataclass
class ClusterStack(Stack):
    layout: Layout | None = None
    _env_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def worker_url(self, name: str) -> str:
        """Worker n starts at node n (and fails over to the next ones, in order)."""
        assert self.layout is not None
        return self.layout.broker_url(first=self.worker_names.index(name) + 1)

    def spawn_worker(self, name: str, *, node: str) -> Child:
        # The supervisor passes one environment to all its children: swap the broker URL in
        # for this start only (the keeper and the chaos driver may start workers at once).
        with self._env_lock:
            shared = self.supervisor.env
            self.supervisor.env = {**shared, "HUB_BROKER_URL": self.worker_url(name)}
            try:
                return super().spawn_worker(name, node=node)
            finally:
                self.supervisor.env = shared
