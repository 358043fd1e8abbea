"""One sandbox system as a plain function of a request: counting, faults, auth, idempotency."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from sandbox.faults import FaultSwitch, parse_faults
from sandbox.ledger import Effect, Ledger
from sandbox.protocol import ApiError, Reply, fingerprint, parse_json

WriteFn = Callable[[Any], Effect]
# A write on one resource, such as POST /shipments/{id}/cancel: called with the id and the body.
ActionFn = Callable[[str, Any], Effect]
ReadFn = Callable[[str], Reply]
AdminFn = Callable[[Any], Reply]


@dataclass
class Service:
    """A downstream system: contract routes plus the sandbox-only /_ routes."""

    name: str
    token: str
    ledger: Ledger
    faults: FaultSwitch
    # Exact path -> write applied under the ledger's lock.
    writes: Mapping[str, WriteFn] = field(default_factory=dict)
    # (prefix, suffix) -> write on the resource whose id sits between them.
    actions: Mapping[tuple[str, str], ActionFn] = field(default_factory=dict)
    # Path prefix -> reader of the (unquoted) rest of the path.
    reads: Mapping[str, ReadFn] = field(default_factory=dict)
    # Extra sandbox-only POST routes, such as the ERP's /_stock.
    admin_posts: Mapping[str, AdminFn] = field(default_factory=dict)

    def handle(
        self,
        method: str,
        target: str,
        *,
        authorization: str | None,
        idempotency_key: str | None,
        body: bytes,
    ) -> Reply:
        """Answer one request; raises ApiError for contract errors."""
        path = target.partition("?")[0]
        if path.startswith("/_"):
            return self._admin(method, path, body)
        self.ledger.count_call()
        refused = self.faults.enter()
        if refused is not None:
            return refused
        try:
            return self._contract(method, path, authorization, idempotency_key, body)
        finally:
            self.faults.leave()

    def _contract(
        self,
        method: str,
        path: str,
        authorization: str | None,
        idempotency_key: str | None,
        body: bytes,
    ) -> Reply:
        # Faults come first: a broken system applies nothing, whoever asks.
        failure = self.faults.strike(idempotency_key)
        if failure is not None:
            return failure
        if not self._authorized(authorization):
            raise ApiError(401, "unauthorized", "missing or wrong bearer token")
        write = self.writes.get(path)
        if write is not None:
            if method != "POST":
                raise ApiError(405, "method_not_allowed", f"{method} {path}")
            return self._write(path, write, idempotency_key, body)
        for (prefix, suffix), action in self.actions.items():
            resource = _between(path, prefix, suffix)
            if resource is not None:
                if method != "POST":
                    raise ApiError(405, "method_not_allowed", f"{method} {path}")
                return self._write(path, functools.partial(action, resource), idempotency_key, body)
        for prefix, read in self.reads.items():
            if path.startswith(prefix) and len(path) > len(prefix):
                if method != "GET":
                    raise ApiError(405, "method_not_allowed", f"{method} {path}")
                return read(unquote(path[len(prefix) :]))
        raise ApiError(404, "not_found", f"no route {method} {path}")

    def _authorized(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.token.encode()
        )

    def _write(self, path: str, write: WriteFn, key: str | None, body: bytes) -> Reply:
        if not key or not key.strip():
            raise ApiError(400, "missing_idempotency_key", "writes need an Idempotency-Key")
        payload = parse_json(body)
        reply, replayed = self.ledger.apply_once(
            key=key, fingerprint=fingerprint(path, payload), apply=lambda: write(payload)
        )
        return reply.with_header("Idempotent-Replayed", "true") if replayed else reply

    def _admin(self, method: str, path: str, body: bytes) -> Reply:
        if path == "/_health" and method == "GET":
            return Reply.json(200, {"system": self.name, "status": "ok"})
        if path == "/_ledger" and method == "GET":
            return Reply.json(200, {**self.ledger.snapshot(), **self.faults.quota_seen()})
        if path == "/_faults":
            if method == "GET":
                return Reply.json(200, self.faults.current().to_json())
            if method == "POST":
                faults = self.faults.set(parse_faults(parse_json(body)))
                return Reply.json(200, faults.to_json())
            if method == "DELETE":
                return Reply.json(200, self.faults.clear().to_json())
        admin = self.admin_posts.get(path)
        if admin is not None and method == "POST":
            return admin(parse_json(body))
        raise ApiError(404, "not_found", f"no sandbox route {method} {path}")


def _between(path: str, prefix: str, suffix: str) -> str | None:
    """The one path segment between prefix and suffix, unquoted, or None when it does not fit."""
    if not (path.startswith(prefix) and path.endswith(suffix)):
        return None
    middle = path[len(prefix) : len(path) - len(suffix)]
    if not middle or "/" in middle:
        return None
    return unquote(middle)
