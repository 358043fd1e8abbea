"""Which node leads each quorum queue, and which nodes hold its replicas (``list_queues``)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from bench.cluster.control import Cluster, ClusterError


@dataclass(frozen=True)
class QueueInfo:
    name: str
    type: str
    leader: str  # node name; empty for a classic queue
    members: tuple[str, ...]  # the nodes holding a replica
    messages: int = 0  # ready and unacknowledged


def list_queues(cluster: Cluster, *, vhost: str = "/") -> list[QueueInfo]:
    """Every queue of ``vhost`` with its type, leader and members, asked of a running node."""
    out = cluster.ctl(
        cluster.any_running(),
        "list_queues",
        "-p",
        vhost,
        "name",
        "type",
        "leader",
        "members",
        "messages",
        "--formatter",
        "json",
        "-q",
    )
    try:
        rows = json.loads(out or "[]")
    except ValueError as exc:
        raise ClusterError(f"list_queues answered something that is not JSON: {out[:200]}") from exc
    return [
        QueueInfo(
            name=str(row.get("name", "")),
            type=str(row.get("type", "")),
            leader=str(row.get("leader") or ""),
            members=tuple(sorted(row.get("members") or [])),
            messages=int(row.get("messages") or 0),
        )
        for row in rows
    ]


def leader_of(cluster: Cluster, queue: str) -> str:
    for info in list_queues(cluster):
        if info.name == queue:
            if not info.leader:
                raise ClusterError(f"{queue} has no leader (type {info.type})")
            return info.leader
    raise ClusterError(f"no queue {queue} on the cluster")


def main_leader(cluster: Cluster, queues: list[str]) -> str:
    """The node leading the most of ``queues`` (the first queue's leader breaks a tie)."""
    leaders = {info.name: info.leader for info in list_queues(cluster) if info.name in queues}
    missing = [q for q in queues if not leaders.get(q)]
    if missing:
        raise ClusterError(f"no leader found for {', '.join(missing)}")
    counts = Counter(leaders[q] for q in queues)
    best = max(counts.values())
    return next(leaders[q] for q in queues if counts[leaders[q]] == best)
