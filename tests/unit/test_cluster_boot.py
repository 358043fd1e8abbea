"""The local cluster's boot tries again from fresh data when a join trips (no I/O: the boot
itself is replaced; the real one runs in the cluster slice)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cluster.control import Cluster, ClusterError
from bench.cluster.layout import Layout, Node

LAYOUT = Layout(base_dir=Path("/tmp/cluster-unit"), prefix="hubu", amqp_base=5711, dist_base=25711)
TRIPPED = "rabbitmqctl -n hubu3@localhost start_app failed (69): {mnesia_app, start}"


class TrippingCluster(Cluster):
    """Fails its first ``failures`` boots the way a Mnesia start after a join fails."""

    def __init__(self, failures: int) -> None:
        super().__init__(LAYOUT)
        self.failures = failures
        self.boots = 0

    def running(self, node: Node) -> bool:
        return False

    def _boot(self, *, timeout: float) -> None:
        self.boots += 1
        if self.boots <= self.failures:
            raise ClusterError(TRIPPED)


def test_a_boot_whose_join_trips_once_is_tried_again_and_comes_up() -> None:
    cluster = TrippingCluster(failures=1)
    cluster.up()
    assert cluster.boots == 2


def test_a_boot_that_keeps_tripping_fails_with_the_nodes_complaint() -> None:
    cluster = TrippingCluster(failures=2)
    with pytest.raises(ClusterError, match="start_app failed"):
        cluster.up(attempts=2)
    assert cluster.boots == 2
