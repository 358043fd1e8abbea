"""What Tryton's answers mean for the hub: the one place that decides transient vs permanent.

Tryton answers business errors with HTTP 200 and ``{"error": [kind, args]}``:
``UserError`` and ``UserWarning`` are permanent (the message is Tryton's own, shown to the
operator); ``ConcurrencyException`` is transient, and so is any other server-side exception
(Tryton's ``[str(exc), traceback]``), as is a 503 (a lock conflict after Tryton's own retries)
and any 5xx. Other statuses (403 unknown method, 404 unknown database) are settings to fix.
"""

from __future__ import annotations

from typing import Any

from adapters.http import classify
from hub.core.errors import DownstreamError, PermanentError, TransientError

SYSTEM = "tryton"
MAX_MESSAGE_CHARS = 300


def classify_fault(method: str, fault: Any) -> DownstreamError:
    """The error of a JSON-RPC answer (HTTP 200) as the hub's error."""
    kind, args = (fault[0], fault[1]) if isinstance(fault, list) and len(fault) > 1 else (fault, "")
    if kind == "UserError":
        return PermanentError(
            system=SYSTEM, message=_text(_first(args), method), code="tryton_user_error"
        )
    if kind == "UserWarning":
        # args: [name, message, description]; the name is what a res.user.warning would accept.
        message = _first(args[1:]) if isinstance(args, list) and len(args) > 1 else _first(args)
        return PermanentError(system=SYSTEM, message=_text(message, method), code="tryton_warning")
    if kind == "ConcurrencyException":
        return TransientError(
            system=SYSTEM, message=_text(_first(args), method), code="tryton_concurrency"
        )
    return TransientError(
        system=SYSTEM, message=_text(str(kind), method), code="tryton_server_error"
    )


def classify_status(method: str, status: int, body: bytes) -> DownstreamError:
    """A non-200 answer (503 HTML, 403, 404, 400) as the hub's error, named by the method."""
    error = classify(system=SYSTEM, status=status, headers={}, body=body)
    error.message = _text(error.message, method)
    return error


def _first(args: Any) -> str:
    if isinstance(args, list | tuple):
        return str(args[0]) if args else ""
    return str(args)


def _text(message: str, method: str) -> str:
    text = " ".join(message.split()) or "(no message)"
    text = f"{text} ({method})"
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"
