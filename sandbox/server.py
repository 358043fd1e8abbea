"""The sandbox servers on stdlib http.server threads: start, stop, serve in the foreground."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import signal
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar

from adapters.control import SandboxControl
from sandbox.accounting import accounting_service
from sandbox.app import Service
from sandbox.erp import erp_service
from sandbox.handler import Answers, SandboxHandler
from sandbox.state import SandboxState
from sandbox.warehouse import warehouse_service

log = logging.getLogger(__name__)

T = TypeVar("T")

SYSTEMS = ("erp", "warehouse", "accounting")
DEFAULT_TOKENS = {name: f"sandbox-{name}-token" for name in SYSTEMS}


class SandboxServer(ThreadingHTTPServer):
    """One system's server; tracks its connections so stop() really cuts clients off."""

    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, host: str, port: int, service: Answers) -> None:
        self.service = service
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), SandboxHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn, which can stall on a slow resolver.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    @property
    def url(self) -> str:
        """The base URL clients use (a wildcard bind is reached over loopback)."""
        host = str(self.server_address[0])
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1" if host != "::" else "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.server_port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (timeout, test over) is business as usual, not a traceback.
        log.debug("sandbox %s: connection from %s ended badly", self.service.name, client_address)

    def cut_connections(self) -> None:
        """Close every open client connection, as a crashed server would."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already gone
                connection.shutdown(socket.SHUT_RDWR)


class Sandbox:
    """The ERP, warehouse and accounting sandboxes, sharing one state, on background threads."""

    def __init__(self, servers: Mapping[str, SandboxServer], state: SandboxState) -> None:
        self.servers = dict(servers)
        self.state = state
        self._threads = [
            threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"sandbox-{name}",
                daemon=True,
            )
            for name, server in self.servers.items()
        ]

    @classmethod
    def start(
        cls,
        *,
        host: str = "127.0.0.1",
        ports: Mapping[str, int] | None = None,
        tokens: Mapping[str, str] | None = None,
        stock: Mapping[str, int] | None = None,
    ) -> Sandbox:
        """Bind the three servers (a system without a port, or port 0: any free port) and serve
        in the background."""
        port_of = _known("ports", ports or {})
        token_of = {**DEFAULT_TOKENS, **_known("tokens", tokens or {})}
        state = SandboxState.create(stock)
        builders = (erp_service, warehouse_service, accounting_service)
        servers: dict[str, SandboxServer] = {}
        try:
            for name, build in zip(SYSTEMS, builders, strict=True):
                servers[name] = SandboxServer(
                    host, port_of.get(name, 0), build(state, token_of[name])
                )
        except BaseException:
            for server in servers.values():
                server.server_close()
            raise
        sandbox = cls(servers, state)
        for thread in sandbox._threads:
            thread.start()
        return sandbox

    def url(self, system: str) -> str:
        """Base URL of one system."""
        return self.servers[system].url

    @property
    def erp_url(self) -> str:
        return self.url("erp")

    @property
    def warehouse_url(self) -> str:
        return self.url("warehouse")

    @property
    def accounting_url(self) -> str:
        return self.url("accounting")

    def control(self, system: str) -> SandboxControl:
        """Faults, stock and ledger of one system, over HTTP."""
        return SandboxControl(self.url(system))

    def service(self, system: str) -> Service:
        """In-process access to a system's ledger and faults."""
        service = self.servers[system].service
        assert isinstance(service, Service)
        return service

    def stop(self) -> None:
        """Stop accepting, cut open connections, release the ports."""
        stoppers = [threading.Thread(target=server.shutdown) for server in self.servers.values()]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        for server in self.servers.values():
            server.server_close()
            server.cut_connections()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _known(what: str, per_system: Mapping[str, T]) -> Mapping[str, T]:
    unknown = set(per_system) - set(SYSTEMS)
    if unknown:
        raise ValueError(f"{what} for unknown systems: {sorted(unknown)}")
    return per_system


@dataclass(frozen=True)
class Place:
    """Where one system's sandbox listens, and the token it expects."""

    host: str
    port: int
    token: str = ""


@dataclass(frozen=True)
class Served:
    """A sandbox serving in the background: where, and how to stop it."""

    url: str
    control_url: str
    stop: Callable[[], None]


def serve_own(system: str, place: Place) -> Served:
    """The sandbox of a system outside the HTTP contract: its module ``sandbox.<system>``
    serves it (``serve(place) -> Served``), so adding one touches only that module."""
    name = f"sandbox.{system}"
    if importlib.util.find_spec(name) is None:
        raise LookupError(
            f"no sandbox for the system {system!r}: it needs a module {name} with serve(place)"
        )
    serve: Callable[[Place], Served] = importlib.import_module(name).serve
    return serve(place)


def run_sandbox(places: Mapping[str, Place]) -> None:
    """Serve each system's sandbox at its place, in the foreground until Ctrl-C or SIGTERM: the
    HTTP contract's three (``SYSTEMS``, one shared state, on the ERP's host) always, any other
    system's from its own module (``serve_own``)."""
    missing = [name for name in SYSTEMS if name not in places]
    if missing:
        raise ValueError(f"no place for the sandboxes of {', '.join(missing)}")
    sandbox = Sandbox.start(
        host=places["erp"].host,
        ports={name: places[name].port for name in SYSTEMS},
        tokens={name: places[name].token for name in SYSTEMS},
    )
    stoppers: list[Callable[[], None]] = [sandbox.stop]
    stopped = threading.Event()
    restore = None
    if threading.current_thread() is threading.main_thread():
        restore = signal.signal(signal.SIGTERM, lambda _signum, _frame: stopped.set())
    try:
        for name in SYSTEMS:
            # A log line, not a print: with JSON logs asked for, every line of the process is one.
            log.info("sandbox %s listening on %s", name, sandbox.url(name))
        for name, place in places.items():
            if name in SYSTEMS:
                continue
            served = serve_own(name, place)
            stoppers.append(served.stop)
            log.info(
                "sandbox %s listening on %s (its /_ endpoints on %s)",
                name,
                served.url,
                served.control_url,
            )
        # A timed wait keeps the main thread responsive to Ctrl-C.
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)
        for stop in reversed(stoppers):
            stop()


def serve_control(host: str, port: int, control: Answers) -> SandboxServer:
    """Serve a sandbox's /_ endpoints over HTTP in the background (for a system reached over
    another protocol: at the port after its own, ``adapters.control.control_url``)."""
    server = SandboxServer(host, port, control)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server
