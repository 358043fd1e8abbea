"""Processes of a local cluster: start, stop cleanly, kill -9, restart; join them into one.

Each node is a ``rabbitmq-server`` in a process group of its own (the script and its Erlang VM),
run as the user the installed RabbitMQ runs as (``rabbitmq``) when we are root. The group's pid
goes to a pid file, so ``make cluster-down`` in another shell stops exactly the nodes that
``make cluster-up`` started, and nothing else: before signalling a pid we check that it still
is the node we think (its ``RABBITMQ_NODENAME``), in case the pid was reused.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from bench.cluster.layout import Layout, Node

# The scripts themselves: /usr/sbin/rabbitmqctl is a wrapper that, run as root, switches to the
# rabbitmq user with the machine's HOME (and so the machine's cookie and node).
SCRIPTS = Path("/usr/lib/rabbitmq/bin")


class ClusterError(RuntimeError):
    """The local cluster could not be started, joined, stopped or asked; the message says why."""


def script(name: str) -> str:
    candidate = SCRIPTS / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise ClusterError(
            f"{name} not found (looked in {SCRIPTS} and PATH): install rabbitmq-server "
            "(apt-get install rabbitmq-server) to run a local cluster"
        )
    return found


def run_as() -> pwd.struct_passwd | None:
    """The account the nodes run as: ``rabbitmq`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("rabbitmq")
    except KeyError:
        return None


def port_answers(port: int, *, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout):
        return True
    return False


class Cluster:
    """A three-node cluster on this machine, laid out by ``layout``."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.user = run_as()
        # Passed to every subprocess we start: None (keep ours) unless we drop root.
        self.uid = self.user.pw_uid if self.user else None
        self.gid = self.user.pw_gid if self.user else None
        self.extra_groups: list[int] | None = [] if self.user else None
        # Nodes started by this process, so their exit can be reaped.
        self._popens: dict[str, subprocess.Popen[bytes]] = {}

    # -- files ------------------------------------------------------------------------------

    def prepare(self, *, fresh: bool) -> None:
        """Directories, config, env and plugin files and the cookie; ``fresh`` wipes old data."""
        layout = self.layout
        if fresh and layout.base_dir.exists():
            shutil.rmtree(layout.base_dir)
        layout.home.mkdir(parents=True, exist_ok=True)
        if not layout.cookie_file.exists():
            # The cluster's own cookie: our nodes cannot talk to the machine's node, nor it to them.
            layout.cookie_file.write_text(secrets.token_hex(20).upper())
        os.chmod(layout.cookie_file, 0o400)
        for node in layout.nodes:
            for sub in ("data", "log", "plugins-expand"):
                (node.root / sub).mkdir(parents=True, exist_ok=True)
            node.config_file.write_text(node.config_text())
            (node.root / "rabbitmq-env.conf").write_text("# our own: not /etc/rabbitmq's\n")
            (node.root / "advanced.config").write_text("[].\n")
            (node.root / "enabled_plugins").write_text("[].\n")
        if self.user is not None:
            for path in [layout.base_dir, *layout.base_dir.rglob("*")]:
                os.chown(path, self.user.pw_uid, self.user.pw_gid)

    # -- rabbitmqctl ----------------------------------------------------------------------

    def env(self, node: Node) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TERM")}
        return {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", **keep, **self.layout.node_env(node)}

    def ctl(self, node: Node, *args: str, timeout: float = 60) -> str:
        """``rabbitmqctl -n <node> ...``; its output, or ClusterError with its complaint."""
        argv = [script("rabbitmqctl"), "-n", node.name, *args]
        done = subprocess.run(
            argv,
            env=self.env(node),
            cwd=self.layout.base_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            user=self.uid,
            group=self.gid,
            extra_groups=self.extra_groups,
        )
        if done.returncode != 0:
            problem = (done.stderr or done.stdout).strip().splitlines()
            raise ClusterError(
                f"rabbitmqctl -n {node.name} {' '.join(args)} failed ({done.returncode}): "
                + " / ".join(problem[:4])
            )
        return str(done.stdout)

    # -- one node -------------------------------------------------------------------------

    def pid(self, node: Node) -> int | None:
        """The process group of ``node`` if it runs (and still is that node), else None."""
        try:
            pid = int(node.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                self._reap(node)
                return None
            if process.environ().get("RABBITMQ_NODENAME") != node.name:
                return None
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        return pid

    def running(self, node: Node) -> bool:
        return self.pid(node) is not None

    def start(self, node: Node, *, wait: bool = True, timeout: float = 90) -> int:
        """Start ``node`` with whatever data it has (so a restarted node rejoins by itself)."""
        if self.running(node):
            raise ClusterError(f"{node.name} is already running (pid {self.pid(node)})")
        if port_answers(node.amqp_port):
            raise ClusterError(f"port {node.amqp_port} is taken: something else listens there")
        with (node.root / "log" / "stdout.log").open("ab") as out:
            popen = subprocess.Popen(
                [script("rabbitmq-server")],
                env=self.env(node),
                cwd=self.layout.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self.uid,
                group=self.gid,
                extra_groups=self.extra_groups,
            )
        self._popens[node.name] = popen
        node.pid_file.write_text(f"{popen.pid}\n")
        if wait:
            self.wait_ready(node, timeout=timeout)
        return int(popen.pid)

    def wait_ready(self, node: Node, *, timeout: float = 90) -> float:
        """Seconds until the node's AMQP listener answers (it opens at the end of the boot)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if port_answers(node.amqp_port):
                return time.monotonic() - started
            if not self.running(node):
                raise ClusterError(f"{node.name} exited while booting; see {node.log_file}")
            time.sleep(0.25)
        raise ClusterError(f"{node.name} not answering on {node.amqp_port} after {timeout:.0f} s")

    def kill(self, node: Node) -> None:
        """SIGKILL the node's whole process group: no goodbye to its peers or clients."""
        pid = self.pid(node)
        if pid is None:
            raise ClusterError(f"{node.name} is not running")
        os.killpg(pid, signal.SIGKILL)
        self._wait_gone(node, pid, timeout=10)

    def stop(self, node: Node, *, timeout: float = 60) -> None:
        """Stop the node cleanly (``rabbitmqctl stop``): it hands over its leaderships first."""
        pid = self.pid(node)
        if pid is None:
            return
        try:
            self.ctl(node, "stop", timeout=timeout)
        except (ClusterError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        try:
            self._wait_gone(node, pid, timeout=timeout)
        except ClusterError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            self._wait_gone(node, pid, timeout=10)

    def restart(self, node: Node, *, timeout: float = 90) -> float:
        """Start a stopped or killed node again; seconds until it answers."""
        started = time.monotonic()
        self.start(node, timeout=timeout)
        return time.monotonic() - started

    def _reap(self, node: Node) -> None:
        popen = self._popens.pop(node.name, None)
        if popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(1)

    def _wait_gone(self, node: Node, pid: int, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._reap(node) if node.name in self._popens and self._exited(node) else None
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                node.pid_file.unlink(missing_ok=True)
                return
            time.sleep(0.1)
        raise ClusterError(f"{node.name} (group {pid}) still running after {timeout:.0f} s")

    def _exited(self, node: Node) -> bool:
        popen = self._popens.get(node.name)
        return popen is not None and popen.poll() is not None

    # -- the cluster ----------------------------------------------------------------------

    def up(self, *, timeout: float = 120, attempts: int = 2) -> float:
        """Three fresh nodes, the 2nd and 3rd joined to the 1st; seconds it took.

        A boot that fails to cluster is torn down and tried again from fresh data: a node's
        Mnesia now and then fails to start right after ``join_cluster`` (``start_app`` exits
        with ``{mnesia_app, start}``; RabbitMQ's own CI meets it too), and the next try from
        empty data directories does not carry the half-joined state over.
        """
        started = time.monotonic()
        busy = [n.name for n in self.layout.nodes if self.running(n)]
        if busy:
            raise ClusterError(f"already running: {', '.join(busy)} (make cluster-down first)")
        for attempt in range(1, attempts + 1):
            try:
                self._boot(timeout=timeout)
                return time.monotonic() - started
            except ClusterError:
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _boot(self, *, timeout: float) -> None:
        self.prepare(fresh=True)
        first, *others = self.layout.nodes
        try:
            for node in self.layout.nodes:
                self.start(node, wait=False)
            with ThreadPoolExecutor(len(self.layout.nodes)) as pool:
                list(pool.map(lambda n: self.wait_ready(n, timeout=timeout), self.layout.nodes))
            # One at a time: two nodes joining the same node at once is when Mnesia trips.
            for node in others:
                self._join(node, first)
            self.wait_members(len(self.layout.nodes), timeout=timeout)
        except BaseException:
            self.down()
            raise

    def _join(self, node: Node, to: Node) -> None:
        self.ctl(node, "stop_app")
        self.ctl(node, "join_cluster", to.name)
        self.ctl(node, "start_app")

    def down(self) -> None:
        """Stop every node we started (cleanly, all at once, so none waits for the others)."""
        with ThreadPoolExecutor(len(self.layout.nodes)) as pool:
            list(pool.map(self.stop, self.layout.nodes))

    def any_running(self) -> Node:
        for node in self.layout.nodes:
            if self.running(node) and port_answers(node.amqp_port):
                return node
        raise ClusterError("no node of the cluster is running (make cluster-up)")

    def running_members(self) -> list[str]:
        """Nodes the cluster itself counts as running, asked of any running node."""
        import json

        status = json.loads(
            self.ctl(self.any_running(), "cluster_status", "--formatter", "json", "-q")
        )
        return sorted(status.get("running_nodes", []))

    def wait_members(self, count: int, *, timeout: float = 90) -> float:
        started = time.monotonic()
        last: list[str] = []
        while time.monotonic() - started < timeout:
            with contextlib.suppress(ClusterError, subprocess.TimeoutExpired, ValueError):
                last = self.running_members()
                if len(last) >= count:
                    return time.monotonic() - started
            time.sleep(0.5)
        raise ClusterError(f"{count} running nodes expected after {timeout:.0f} s, saw {last}")
