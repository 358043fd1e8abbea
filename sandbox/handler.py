"""HTTP/1.1 keep-alive request handler of a sandbox server: parse, ask the Service, reply."""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

from sandbox.protocol import ApiError, Reply

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
MAX_LINE_BYTES = 65536
MAX_HEADERS = 100


class Answers(Protocol):
    """What a sandbox server serves: a system's ``Service``, or the /_ endpoints of a sandbox
    reached over another protocol."""

    name: str

    def handle(
        self,
        method: str,
        target: str,
        *,
        authorization: str | None,
        idempotency_key: str | None,
        body: bytes,
    ) -> Reply: ...


class HasService(Protocol):
    """The server a handler belongs to."""

    service: Answers


class SandboxHandler(BaseHTTPRequestHandler):
    """Reads one request, asks the Service, writes the reply in a single send."""

    protocol_version = "HTTP/1.1"
    # Without this every keep-alive response waits ~40 ms on the client's delayed ACK.
    disable_nagle_algorithm = True
    # Buffered so status line, headers and body leave in one segment on the per-request flush.
    wbufsize = 1 << 16
    # Idle keep-alive connections are dropped after this, so their threads do not pile up.
    timeout = 120
    server_version = "hub-sandbox/1"

    fields: dict[str, str]
    raw_requestline: bytes  # set by handle_one_request before parse_request

    def parse_request(self) -> bool:
        """Parse the request line and headers into ``fields`` (lower-case names).

        The stdlib parses headers with the email package, which costs more than everything
        else a sandbox request does; a sandbox only needs a handful of plain headers.
        """
        self.command = ""
        self.request_version = self.default_request_version
        self.close_connection = True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if len(words) != 3 or not words[2].startswith("HTTP/1."):
            self.send_error(HTTPStatus.BAD_REQUEST, "expected METHOD target HTTP/1.x")
            return False
        self.command, self.path, self.request_version = words
        fields: dict[str, str] = {}
        while True:
            line = self.rfile.readline(MAX_LINE_BYTES + 1)
            if line in (b"\r\n", b"\n", b""):
                break
            name, colon, value = str(line, "iso-8859-1").partition(":")
            if len(line) > MAX_LINE_BYTES or len(fields) >= MAX_HEADERS or not colon:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "bad header")
                return False
            fields[name.strip().lower()] = value.strip()
        self.fields = fields
        connection = fields.get("connection", "").lower()
        if self.request_version == "HTTP/1.0":
            self.close_connection = connection != "keep-alive"
        else:
            self.close_connection = connection == "close"
        if fields.get("expect", "").lower() == "100-continue":
            return self.handle_expect_100()
        return True

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr line."""

    def _serve(self) -> None:
        service = self._service()
        try:
            body = self._read_body()
            reply = service.handle(
                self.command,
                self.path,
                authorization=self.fields.get("authorization"),
                idempotency_key=self.fields.get("idempotency-key"),
                body=body,
            )
        except ApiError as exc:
            reply = exc.reply()
        except Exception:
            log.exception("sandbox %s failed on %s %s", service.name, self.command, self.path)
            reply = ApiError(500, "internal", "sandbox bug, see its log").reply()
        self._send(reply)

    def _service(self) -> Answers:
        server: HasService = self.server  # type: ignore[assignment]
        return server.service

    def _read_body(self) -> bytes:
        if "chunked" in self.fields.get("transfer-encoding", "").lower():
            self.close_connection = True
            raise ApiError(411, "length_required", "send a Content-Length")
        raw = self.fields.get("content-length")
        if not raw:
            return b""
        length = int(raw) if raw.isdigit() else -1
        if length < 0:
            self.close_connection = True
            raise ApiError(400, "bad_request", "bad Content-Length")
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise ApiError(413, "too_large", f"body over {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length)

    def _send(self, reply: Reply) -> None:
        if reply.is_reset:
            # Linger 0: closing the socket sends a RST, as a crashed proxy's would.
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.payload) + reply.padding))
        for name, value in reply.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not (reply.drip_s or reply.padding):
            self.wfile.write(reply.payload)
            return
        self.close_connection = True  # the client may well hang up half-way
        # When it does (what a bounded client does), the write fails: nothing more to send.
        with contextlib.suppress(OSError):
            self._send_slowly(reply)

    def _send_slowly(self, reply: Reply) -> None:
        if reply.drip_s:
            for byte in reply.payload:
                self.wfile.write(bytes((byte,)))
                self.wfile.flush()
                time.sleep(reply.drip_s)
        else:
            self.wfile.write(reply.payload)
        spaces = b" " * min(reply.padding, 1 << 16)
        left = reply.padding
        while left > 0:
            self.wfile.write(spaces[:left])
            left -= len(spaces)
