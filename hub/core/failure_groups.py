"""Failure groups: which failures share a cause, so an operator can act on the cause once.

Two failures are in one group when they failed at the same step, with the same kind and error
code, and their messages are the same once the parts that differ from order to order (ids,
skus, quantities, amounts, hosts, times) are masked: ``SKU-020: 1 wanted, 0 available`` and
``SKU-031: 4 wanted, 1 available`` both read ``<id>: # wanted, # available``.

A group's id is a short hash of that key, not a row id: the same cause keeps the same id in
every process, on every page and in every command, before and after a restart.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

ID = "<id>"
NUMBER = "#"
# Long enough for a page or a command line; the sample message keeps the whole text.
FINGERPRINT_LENGTH = 200
GROUP_ID_LENGTH = 12
GROUP_ID_PATTERN = rf"^[0-9a-f]{{{GROUP_ID_LENGTH}}}$"

# A word, with dots and dashes allowed inside it: "SKU-020", "127.0.0.1", "2026-11-25",
# "a1b2c3d4-...". Punctuation at its ends (a sentence's full stop) is not part of it.
_TOKEN = re.compile(r"[A-Za-z0-9_]+(?:[.\-][A-Za-z0-9_]+)*")
# Digits with separators only: a count, an amount, an address, a date.
_NUMBER = re.compile(r"^[0-9]+(?:[.\-][0-9]+)*$")
# A hex run this long is an id even without a digit in it (no English word is one).
_HEX_ID = re.compile(r"^[0-9a-fA-F]{12,}$")
_SPACE = re.compile(r"\s+")


def _mask(token: str) -> str:
    if _NUMBER.match(token):
        return NUMBER
    if any(char.isdigit() for char in token) or _HEX_ID.match(token.replace("-", "")):
        return ID
    return token


def fingerprint(message: str) -> str:
    """The message with what varies between orders masked: ids as ``<id>``, numbers as ``#``."""
    masked = _TOKEN.sub(lambda match: _mask(match.group(0)), message)
    return _SPACE.sub(" ", masked).strip()[:FINGERPRINT_LENGTH]


@dataclass(frozen=True)
class GroupKey:
    """What makes two failures one group."""

    step: str
    kind: str
    code: str | None
    fingerprint: str

    @classmethod
    def of(cls, *, step: str, kind: str, code: str | None, message: str) -> GroupKey:
        return cls(step, kind, code or None, fingerprint(message))

    @property
    def group_id(self) -> str:
        """A stable short hash of the key: the same cause has the same id everywhere, always."""
        text = "\0".join((self.step, self.kind, self.code or "", self.fingerprint))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:GROUP_ID_LENGTH]
