"""Every port the tests listen on, as an offset from HUB_TEST_PORT_BASE, in one table.

Two uses of one suite never meet (tests/unit/test_test_ports.py checks the ranges apart), and
two suites whose bases are at least ``SLOT_WIDTH`` apart never meet either: every port a suite
opens is derived from its base, nothing is fixed. (The machine's own PostgreSQL and RabbitMQ
are shared on purpose: each suite has its own database, vhost or queue prefix there.)
"""

from __future__ import annotations

import os
from pathlib import Path

PORT_BASE = int(os.environ.get("HUB_TEST_PORT_BASE", "18100"))
# The ports of one suite, from its base: a second suite takes a base this far away or more.
SLOT_WIDTH = 1000

# name: (first offset, ports taken)
OFFSETS: dict[str, tuple[int, int]] = {
    "stack": (0, 4),  # API, ERP, warehouse, accounting (tests/conftest.py)
    "flower": (5, 1),  # tests/e2e/test_flower.py
    "smtp": (6, 2),  # the SMTP sandbox, then its /_ endpoints (tests/conftest.py)
    "demo": (20, 6),  # tests/e2e/test_demo.py: the demo's API, sandboxes, SMTP and its /_
    "cluster_hub": (40, 5),  # tests/e2e/test_cluster_slice.py: API, sandboxes, baseline
    "cluster_nodes": (45, 6),  # its 3 nodes: AMQP, then Erlang distribution
    "chaos_hub": (55, 5),  # tests/e2e/test_chaos_slice.py
    "chaos_node": (60, 2),  # its node: AMQP, distribution
    "first_day_gate": (65, 2),  # tests/e2e/test_first_day.py: the broker's gate, the API
    "first_day_demo": (70, 4),  # its demo's API and sandboxes
    "nowhere": (79, 1),  # tests/e2e/test_reconcile.py: a port where nothing listens
    "operations_doc": (80, 6),  # tests/e2e/test_operations_doc.py: sandboxes, two APIs, Flower
    "tryton_hub": (86, 5),  # tests/tryton/test_e2e.py: API, sandboxes, baseline
    "pg_failover_hub": (100, 5),  # tests/e2e/test_pg_failover_slice.py
    "pg_failover_cluster": (200, 23),  # its etcd +0/+1, PostgreSQL +11.., Patroni REST +21..
    "cluster_ctl": (300, 10),  # rabbitmqctl's own distribution ports, cluster slice
    "chaos_ctl": (310, 10),  # and chaos slice
    "trial": (850, 9),  # tests/e2e_trial (unless HUB_TEST_TRIAL_PORT_BASE moves it)
    "tryton": (900, 1),  # tests/tryton
    "tryton_e2e": (901, 1),  # tests/tryton/test_e2e.py: its own trytond
}


def offset(name: str) -> int:
    return OFFSETS[name][0]


def port(name: str, n: int = 0) -> int:
    """The ``n``-th port of ``name`` in this suite."""
    first, count = OFFSETS[name]
    if not 0 <= n < count:
        raise ValueError(f"{name} has {count} port(s), not a {n + 1}th")
    return PORT_BASE + first + n


def ephemeral_clash(
    base: int = PORT_BASE, ranges: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")
) -> str | None:
    """Why the suite's ports may be taken at random, if they may: the kernel hands out local
    ports of outgoing connections from ``ip_local_port_range`` (32768-60999 on Linux), so a
    port there can be in use by any client socket of the machine when a test binds it."""
    try:
        low, high = (int(n) for n in ranges.read_text().split())
    except (OSError, ValueError):
        return None  # not Linux, or unreadable: nothing to say
    if base > high or base + SLOT_WIDTH - 1 < low:
        return None
    return (
        f"HUB_TEST_PORT_BASE={base}: the suite's ports {base}-{base + SLOT_WIDTH - 1} overlap "
        f"the kernel's ephemeral ports {low}-{high} (any outgoing connection may hold one); "
        f"pick a base below {low - SLOT_WIDTH + 1} or above {high}"
    )
