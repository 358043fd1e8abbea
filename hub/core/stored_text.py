"""What the hub keeps of text from outside, within what its columns can hold.

PostgreSQL refuses NUL in text and JSONB (a ``DataError`` that used to crash the step and lose
its message), and a value over its column's length is refused the same way. A downstream's
words are kept without NUL and, where a column is bounded, cut with a visible marker; a
downstream id is kept whole or not at all (a cut id would name something else), so a reply
with one the hub cannot keep is a permanent failure saying why (``unrecordable``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Failure records' error_code; step_outcomes.downstream_id (hub.db.models).
CODE_CHARS = 64
DOWNSTREAM_ID_CHARS = 128
CUT_MARK = "…"
UNRECORDABLE = "unrecordable_reply"


def storable(text: str, limit: int | None = None) -> str:
    """``text`` without NUL, and within ``limit`` characters (cut ones end in the marker)."""
    text = text.replace("\x00", "")
    if limit is not None and len(text) > limit:
        return text[: limit - len(CUT_MARK)] + CUT_MARK
    return text


def storable_result(value: Any) -> Any:
    """A reply kept as JSON, with NUL removed from every string in it (keys included)."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, Mapping):
        return {storable(str(key)): storable_result(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable_result(item) for item in value]
    return value


def unrecordable(downstream_id: str) -> str | None:
    """Why a downstream id cannot be kept as it is, or None when it can."""
    if "\x00" in downstream_id:
        return "the reply's id contains a NUL character"
    if len(downstream_id) > DOWNSTREAM_ID_CHARS:
        return (
            f"the reply's id has {len(downstream_id)} characters, "
            f"more than the {DOWNSTREAM_ID_CHARS} the hub keeps"
        )
    return None
