"""Text from outside: how it is kept (hub.core.stored_text) and shown (cli.plain)."""

from __future__ import annotations

from rich.console import Console

from hub.core.errors import PermanentError, TransientError
from hub.core.stored_text import storable, storable_result, unrecordable
from hub.entrypoints.cli.plain import plain, visible


def test_controls_and_bidi_are_written_out_and_markup_is_not_parsed() -> None:
    assert visible("a\x1b[2Jb\x00\x9b\u202e\u2066\t") == "a\\x1b[2Jb\\x00\\x9b\\u202e\\u2066\\x09"
    console = Console(width=200, record=True, color_system=None)
    console.print(plain("[/x] [link=http://e.x]c[/link]\x1b]0;title\x07"))
    assert console.export_text().rstrip("\n") == "[/x] [link=http://e.x]c[/link]\\x1b]0;title\\x07"


def test_kept_text_has_no_nul_and_fits_its_column_with_a_marker() -> None:
    assert storable("a\x00b") == "ab"
    assert storable("x" * 70, 64) == "x" * 63 + "…"
    assert storable_result({"k\x00": ["v\x00", 1, {"n": None}]}) == {"k": ["v", 1, {"n": None}]}


def test_an_id_is_kept_whole_or_refused_saying_why() -> None:
    assert unrecordable("R-1") is None
    assert unrecordable("R" * 128) is None
    assert (
        unrecordable("R" * 129)
        == "the reply's id has 129 characters, more than the 128 the hub keeps"
    )
    assert unrecordable("R\x00") == "the reply's id contains a NUL character"


def test_every_downstream_error_keeps_its_code_and_message_storable() -> None:
    error = PermanentError(system="erp", message="no\x00pe", code="c" * 100)
    assert error.message == "nope" and error.code == "c" * 63 + "…"
    assert TransientError(system="erp", message="x", code="\x00").code is None


def test_a_pace_spaces_answers_and_lets_a_late_one_through_at_once() -> None:
    from hub.observability.cached import Pace

    now = [100.0]
    pace = Pace(10, clock=lambda: now[0])
    assert [round(pace.turn(), 3) for _ in range(4)] == [0.0, 0.1, 0.2, 0.3]
    now[0] = 200.0
    assert pace.turn() == 0.0
