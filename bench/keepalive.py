"""Figure k: keep-alive POSTs to the sandbox, the hub's adapter on one connection.

Moved here from the integration tier, where it was a timed assertion (300 POSTs under 3 s): a
Nagle / delayed-ACK regression in the sandbox's server (an answer written in two pieces) makes
each keep-alive answer wait ~40 ms for the client's delayed ACK. The baseline, same run and same
machine, is a bare HTTP/1.1 server of the standard library answering every POST with one write,
posted to by a requests session on one connection: the ratio is the sandbox's cost per POST over
the bare one, and a regression shows as a ratio in the tens.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from adapters.erp import ErpClient
from hub.core.ports.downstream import Line, Order
from sandbox import DEFAULT_TOKENS, Sandbox

REPLY = b'{"id": "rsv_bare", "status": "reserved"}'


@dataclass(frozen=True)
class KeepAliveParams:
    posts: int = 300


def order(n: int) -> Order:
    return Order(
        id=uuid.UUID(int=1000 + n),
        customer={"id": "C-1", "name": "Ada", "email": "ada@example.com"},
        ship_to={
            "name": "Ada",
            "line1": "1 Main St",
            "city": "Utrecht",
            "postal_code": "3511",
            "country": "NL",
        },
        currency="EUR",
        lines=(Line("SKU-003", 1, "1.00"),),
    )


class _Bare(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the sandbox

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        head = (
            f"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(REPLY)}\r\n\r\n"
        ).encode()
        self.wfile.write(head + REPLY)  # one write: no wait for a delayed ACK

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _per_post_ms(post: Any, count: int) -> float:
    post(-1)  # the connection, and caches
    started = time.perf_counter()
    for n in range(count):
        post(n)
    return (time.perf_counter() - started) * 1000 / count


def measure(params: KeepAliveParams) -> dict[str, Any]:
    sandbox = Sandbox.start(host="127.0.0.1")
    try:
        erp = ErpClient(base_url=sandbox.erp_url, token=DEFAULT_TOKENS["erp"])
        hub_ms = _per_post_ms(
            lambda n: erp.reserve(order(n), f"{order(n).id}:inventory"), params.posts
        )
    finally:
        sandbox.stop()
    bare = ThreadingHTTPServer(("127.0.0.1", 0), _Bare)
    threading.Thread(target=bare.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{bare.server_address[1]}/reservations"
        with requests.Session() as session:

            def post(n: int) -> None:
                session.post(url, json={"n": n}, timeout=5).raise_for_status()

            bare_ms = _per_post_ms(post, params.posts)
    finally:
        bare.shutdown()
        bare.server_close()
    return {
        "params": {"posts": params.posts},
        "sandbox_ms_per_post": round(hub_ms, 3),
        "bare_ms_per_post": round(bare_ms, 3),
        "ratio": round(hub_ms / bare_ms, 2) if bare_ms else 0.0,
    }
