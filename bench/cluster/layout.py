"""Where each node of a local cluster lives: its name, ports, directories and environment.

Pure data, no I/O: the control module turns a layout into processes. The machine's own node
(``rabbit@localhost`` on 5672/25672/15672, configured by /etc/rabbitmq) is never touched: our
nodes have their own names, ports, config and env files, data and log directories, and Erlang
cookie, so no setting of the machine's node leaks into them and they cannot reach it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NODES = 3


@dataclass(frozen=True)
class Node:
    index: int  # 1-based
    name: str  # Erlang node name, e.g. hubc1@localhost
    amqp_port: int
    dist_port: int
    root: Path  # this node's own directory (config, data, logs)

    @property
    def short(self) -> str:
        return self.name.split("@", 1)[0]

    @property
    def amqp_url(self) -> str:
        # The default vhost: the cluster is ours alone, nobody else's queues live on it.
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}//"

    @property
    def config_file(self) -> Path:
        return self.root / "rabbitmq.conf"

    @property
    def log_file(self) -> Path:
        return self.root / "log" / "node.log"

    @property
    def pid_file(self) -> Path:
        # The pid of the process group we started (the rabbitmq-server script and its VM).
        return self.root / "group.pid"

    def config_text(self) -> str:
        return "\n".join(
            [
                "# Written by bench.cluster; loopback only.",
                f"listeners.tcp.1 = 127.0.0.1:{self.amqp_port}",
                # A node cut off from the majority pauses instead of serving a split brain
                # (quorum queues are safe either way; this keeps classic state consistent too).
                "cluster_partition_handling = pause_minority",
                "log.file.level = info",
                "log.console = false",
                "",
            ]
        )


@dataclass(frozen=True)
class Layout:
    """A cluster's shape: ``prefix`` names its nodes, the bases number its ports."""

    base_dir: Path
    prefix: str = "hubc"
    amqp_base: int = 5701
    dist_base: int = 25701
    size: int = NODES
    # The first of the 10 distribution ports rabbitmqctl itself may take (None: dist_base +
    # 30, below the kernel's ephemeral range like every other port); the tests give one inside
    # their own port range.
    ctl_base: int | None = None

    @property
    def home(self) -> Path:
        # HOME of the nodes and of our rabbitmqctl calls: holds the cluster's own cookie.
        return self.base_dir / "home"

    @property
    def cookie_file(self) -> Path:
        return self.home / ".erlang.cookie"

    @property
    def ctl_ports(self) -> tuple[int, int]:
        # The distribution ports rabbitmqctl itself may take, clear of the machine's
        # (35672-35682), of every node port and of the kernel's ephemeral ports (32768 and up:
        # an outgoing connection of any program may hold one there when rabbitmqctl binds it).
        # +30: clear of make cluster-chaos's nodes too (their distribution ports are +10).
        first = self.dist_base + 30 if self.ctl_base is None else self.ctl_base
        return first, first + 9

    @property
    def nodes(self) -> list[Node]:
        return [
            Node(
                index=n,
                name=f"{self.prefix}{n}@localhost",
                amqp_port=self.amqp_base + n - 1,
                dist_port=self.dist_base + n - 1,
                root=self.base_dir / f"{self.prefix}{n}",
            )
            for n in range(1, self.size + 1)
        ]

    def node(self, which: int | str) -> Node:
        """A node by its 1-based index, its short name (hubc2) or its full name."""
        for node in self.nodes:
            if which in (node.index, str(node.index), node.short, node.name):
                return node
        raise KeyError(f"no node {which!r} in this cluster ({', '.join(self.names)})")

    @property
    def names(self) -> list[str]:
        return [node.name for node in self.nodes]

    def broker_url(self, first: int = 1) -> str:
        """Kombu's failover list of every node, starting at node ``first`` (1-based).

        Each process is given a different first node, so connections spread over the cluster
        and each fails over to the next one when its node goes away.
        """
        nodes = self.nodes
        start = (first - 1) % len(nodes)
        return ";".join(node.amqp_url for node in nodes[start:] + nodes[:start])

    def node_env(self, node: Node) -> dict[str, str]:
        """The environment of ``rabbitmq-server`` (and of rabbitmqctl) for ``node``."""
        ctl_min, ctl_max = self.ctl_ports
        return {
            "HOME": str(self.home),
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            # Our own env file: /etc/rabbitmq/rabbitmq-env.conf names the machine's node.
            "RABBITMQ_CONF_ENV_FILE": str(node.root / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(node.config_file),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(node.root / "advanced.config"),
            "RABBITMQ_MNESIA_BASE": str(node.root / "data"),
            "RABBITMQ_MNESIA_DIR": str(node.root / "data" / node.short),
            "RABBITMQ_LOG_BASE": str(node.root / "log"),
            "RABBITMQ_LOGS": str(node.log_file),
            "RABBITMQ_PID_FILE": str(node.root / "rabbit.pid"),
            # No plugins (no management listener on 15672 to clash with the machine's).
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(node.root / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(node.root / "plugins-expand"),
            # Erlang distribution on loopback only, and the machine's epmd (bound to loopback).
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CTL_DIST_PORT_MIN": str(ctl_min),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(ctl_max),
        }
