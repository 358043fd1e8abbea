"""docs/operations.md's command tables against the code: every ``hub`` command and option the
page names exists, and every ``make`` target and variable it names is in the Makefile.

(The page's runnable code blocks are run as written on a stack by
tests/e2e/test_operations_doc.py; this checks the tables' synopses, which are not runnable.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main

from hub.__main__ import cli

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs/operations.md").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()


def table_rows(heading: str) -> list[str]:
    """The first cells of the table under ``heading``."""
    section = PAGE.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [re.split(r"(?<!\\)\|", row)[1] for row in rows]


def synopses(cell: str, program: str) -> list[str]:
    """Each backticked span of a cell that starts with ``program``."""
    return [span for span in re.findall(r"`([^`]+)`", cell) if span.startswith(program + " ")]


def is_group(command: Any) -> bool:
    # Typer carries a click of its own: a group is what has subcommands.
    return hasattr(command, "commands")


def resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The command the leading words name, and the words used."""
    command: Any = typer.main.get_command(cli)
    used = []
    for word in words:
        if not is_group(command) or word not in command.commands:
            break
        command = command.commands[word]
        used.append(word)
    return command, used


def test_every_hub_command_and_option_the_page_names_exists() -> None:
    problems = []
    spans = [span for cell in table_rows("The `hub` command") for span in synopses(cell, "hub")]
    assert len(spans) > 20, "the table was not found"
    for span in spans:
        words = span.split()[1:]
        command, used = resolve(words)
        if not used or is_group(command):
            problems.append(f"{span!r}: no such command")
            continue
        known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        for option in re.findall(r"--[a-z][a-z-]*", span):
            if option not in known:
                problems.append(f"{span!r}: hub {' '.join(used)} has no {option}")
    assert not problems, "\n".join(problems)


def makefile_recipe(target: str) -> str | None:
    found = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)*)", MAKEFILE, flags=re.M)
    return found.group(1) if found else None


def test_every_make_target_and_variable_the_page_names_is_in_the_makefile() -> None:
    problems = []
    spans = [span for cell in table_rows("Make targets") for span in synopses(cell, "make")]
    assert len(spans) > 15, "the table was not found"
    for span in spans:
        target = span.split()[1]
        recipe = makefile_recipe(target)
        if recipe is None:
            problems.append(f"{span!r}: no target {target}")
            continue
        for variable in re.findall(r"\b([A-Z][A-Z_]+)=", span):
            if f"$({variable})" not in recipe:
                problems.append(f"{span!r}: make {target} does not read {variable}")
    assert not problems, "\n".join(problems)
