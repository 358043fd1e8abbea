"""The sandbox of the notification system: a real SMTP server on loopback (aiosmtpd).

Its ledger counts distinct ``Message-ID``s, so a test can prove each order's customer got
exactly one e-mail however often the step ran. ``python -m sandbox`` serves it when the notify
step is on (``serve``), with its ledger over HTTP (``SmtpControl``) for the demo and
``hub reconcile``.
"""

from __future__ import annotations

import threading
import time
from email import message_from_bytes
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from sandbox.protocol import ApiError, Reply
from sandbox.server import Place, Served, serve_control


class SmtpLedger:
    """aiosmtpd's handler: every message received, by Message-ID."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.started_at = time.time()  # in memory: what came before a restart is forgotten
        self._effects: dict[str, dict[str, Any]] = {}

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content or b""
        message = message_from_bytes(content if isinstance(content, bytes) else content.encode())
        message_id = str(message.get("Message-ID", ""))
        with self._lock:
            self.calls += 1
            key = str(message.get("X-Idempotency-Key", ""))
            self._effects.setdefault(
                message_id,
                {
                    "id": message_id,
                    "idempotency_key": key,
                    # As the HTTP sandboxes' effects: the order (from the key) and when.
                    "order_id": key.rpartition(":")[0],
                    "at": time.time(),
                    "to": list(envelope.rcpt_tos),
                    "subject": str(message.get("Subject", "")),
                    "body": message.get_payload(),
                },
            )
        return "250 Message accepted"

    def ledger(self) -> dict[str, Any]:
        """As the HTTP sandboxes' ``/_ledger``: calls, and one effect per distinct Message-ID."""
        with self._lock:
            return {
                "started_at": self.started_at,
                "calls": self.calls,
                "effects": list(self._effects.values()),
            }


class SmtpSandbox:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.ledger = SmtpLedger()
        self._controller = Controller(self.ledger, hostname=host, port=port or _free_port(host))
        self._running = False

    def start(self) -> SmtpSandbox:
        self._controller.start()
        self._running = True
        return self

    @property
    def port(self) -> int:
        return int(self._controller.port)

    @property
    def url(self) -> str:
        return f"smtp://{self._controller.hostname}:{self.port}"

    def stop(self) -> None:
        """Stop serving (once; a stopped sandbox does not start again)."""
        if self._running:
            self._running = False
            self._controller.stop()


def _free_port(host: str) -> int:
    """A free port whose next one is free too: the /_ endpoints are served there."""
    import socket

    for _ in range(50):
        with socket.socket() as probe, socket.socket() as control:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
            try:
                control.bind((host, port + 1))
            except OSError:
                continue
            return port
    raise OSError(f"no two free ports side by side on {host}")


class SmtpControl:
    """The SMTP sandbox's /_ endpoints, served over HTTP by a ``SandboxServer`` at the port
    after its SMTP port (``adapters.control.control_url``): health, the ledger, and faults,
    of which it has none (setting one is refused, clearing them is a no-op)."""

    def __init__(self, sandbox: SmtpSandbox) -> None:
        self.name = "smtp"
        self._sandbox = sandbox

    def handle(
        self,
        method: str,
        target: str,
        *,
        authorization: str | None,
        idempotency_key: str | None,
        body: bytes,
    ) -> Reply:
        path = target.partition("?")[0]
        if path == "/_health" and method == "GET":
            return Reply.json(200, {"system": self.name, "status": "ok"})
        if path == "/_ledger" and method == "GET":
            return Reply.json(200, {"system": self.name, **self._sandbox.ledger.ledger()})
        if path == "/_faults" and method in ("GET", "DELETE"):
            return Reply.json(200, {})
        if path == "/_faults" and method == "POST":
            raise ApiError(400, "no_faults", "the SMTP sandbox has no faults to set")
        raise ApiError(404, "not_found", f"no sandbox route {method} {path}")


def serve(place: Place) -> Served:
    """The SMTP sandbox at ``place`` (port 0: two free ones side by side), its /_ endpoints on
    HTTP at the next port (what ``python -m sandbox`` calls for the ``smtp`` system)."""
    mail = SmtpSandbox(host=place.host, port=place.port).start()
    try:
        control = serve_control(place.host, mail.port + 1, SmtpControl(mail))
    except BaseException:
        mail.stop()
        raise

    def stop() -> None:
        control.shutdown()
        control.server_close()
        mail.stop()

    return Served(url=mail.url, control_url=control.url, stop=stop)
