"""Text from outside (downstream replies, senders, the database) as a terminal must show it.

Rich reads ``[...]`` in a string as markup: ``[/x]`` raises ``MarkupError`` (the whole command
exits 1, for every row), ``[link=...]`` or ``[conceal]`` is obeyed. Terminal escapes
(``\\x1b[2J``) would clear or rewrite the operator's screen, and bidi controls reorder what is
read. Every such value is printed as a ``Text`` (never parsed for markup) with each control
character written out visibly (``\\x1b``, ``\\u202e``).
"""

from __future__ import annotations

import re

from rich.text import Text

# C0 and C1 controls, DEL, and the Unicode format characters that reorder or hide text
# (bidi embeddings, overrides and isolates, marks, zero-width joiners, the BOM).
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def visible(text: str) -> str:
    """``text`` with every control or format character written as its escape."""
    return _INVISIBLE.sub(_escape, text)


def plain(value: object) -> Text:
    """A table cell or line part that rich prints as it is: no markup, controls visible."""
    return Text(visible("" if value is None else str(value)))


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
