"""The documentation stays true to the code and stands on its own.

- docs/settings.md lists exactly the variables the settings model accepts, with its defaults;
- no tracked file points at a path outside the repository, and every relative link in the
  README and docs/ leads to a file that exists.
"""

from __future__ import annotations

import re
import subprocess
import types
import typing
from functools import cache
from pathlib import Path

from pydantic import BaseModel, SecretStr

from hub.core.registry import REGISTRY
from hub.core.retry_policy import RetryPolicy
from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_PAGE = ROOT / "docs" / "settings.md"
PREFIX = Settings.model_config.get("env_prefix", "")
NESTED = Settings.model_config.get("env_nested_delimiter") or "__"

# What "unset" looks like in the table: a field whose default is None (or inside one).
UNSET = "unset"


# ---- settings ------------------------------------------------------------------------------


def _nested_model(annotation: object) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``RetryPolicy | None``, if any."""
    candidates = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_union(annotation: object) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def model_variables(
    model: type[BaseModel] = Settings, *, prefix: str = PREFIX, default: object = None
) -> dict[str, object]:
    """Every variable the model accepts (nested models joined with ``__``) -> its default.

    A nested model's fields take their defaults from the parent's default instance; when the
    parent defaults to None (a per-step retry policy), the leaves are "unset" too (None).
    """
    found: dict[str, object] = {}
    if model is Settings:
        found |= registry_variables()
    for name, field in model.model_fields.items():
        if model is Settings and name in PER_SYSTEM_FIELDS:
            continue
        if model is Settings:
            value = field.get_default(call_default_factory=True)
        else:
            value = getattr(default, name) if default is not None else None
        nested = _nested_model(field.annotation)
        if nested is not None:
            found |= model_variables(
                nested, prefix=f"{prefix}{name.upper()}{NESTED}", default=value
            )
        else:
            found[f"{prefix}{name.upper()}"] = value
    return found


# Fields read from variables named after each system or step (registry_variables).
PER_SYSTEM_FIELDS = ("systems", "step_retry", "enabled_steps")


def registry_variables() -> dict[str, object]:
    """HUB_<SYSTEM>_* of every system, HUB_RETRY_<STEP>__* of every step and HUB_<STEP>_ENABLED
    of every optional one, with their defaults (None: unset, another setting applies)."""
    found: dict[str, object] = {}
    policy_fields = list(RetryPolicy.model_fields)
    for name, system in REGISTRY.systems.items():
        upper = f"{PREFIX}{name.upper()}_"
        found |= {
            f"{upper}URL": system.url,
            f"{upper}TOKEN": system.token,
            f"{upper}ADAPTER": system.default_adapter,
            f"{upper}CONNECT_TIMEOUT": None,
            f"{upper}READ_TIMEOUT": None,
            f"{upper}MAX_IN_FLIGHT": None,
            f"{upper}RATE": None,
        }
        found |= {f"{upper}RETRY{NESTED}{field.upper()}": None for field in policy_fields}
    for step in REGISTRY.step_names:
        found |= {
            f"{PREFIX}RETRY_{step.upper()}{NESTED}{field.upper()}": None for field in policy_fields
        }
    for step in REGISTRY.optional_steps:
        found[f"{PREFIX}{step.upper()}_ENABLED"] = False
    return found


def shown(default: object) -> str:
    """A default as the settings page writes it."""
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


@cache
def documented_rows() -> dict[str, str]:
    """Table rows of docs/settings.md whose first cell is a variable: name -> default cell."""
    rows: dict[str, str] = {}
    for line in SETTINGS_PAGE.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(rf"`{PREFIX}\w+`", cells[0]):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_the_settings_page_lists_every_variable_the_model_accepts() -> None:
    missing = sorted(set(model_variables()) - set(documented_rows()))
    assert not missing, f"add these to docs/settings.md: {missing}"


def test_every_variable_on_the_settings_page_exists() -> None:
    # Anywhere on the page, not only in tables; "HUB_RETRY_<STEP>__..." patterns end in "_".
    mentioned = set(re.findall(rf"\b{PREFIX}[A-Z0-9_]*[A-Z0-9]\b", SETTINGS_PAGE.read_text()))
    unknown = sorted(mentioned - set(model_variables()))
    assert not unknown, f"docs/settings.md names variables the model does not have: {unknown}"


def test_the_settings_page_shows_the_model_defaults() -> None:
    wrong = {}
    for name, default in model_variables().items():
        cell = documented_rows().get(name)
        if cell is None:
            continue  # reported by the test above
        expected = UNSET if default is None else f"`{shown(default)}`"
        if not cell.startswith(expected):
            wrong[name] = f"page says {cell!r}, model says {expected}"
    assert not wrong, f"defaults on docs/settings.md differ from the model: {wrong}"


# ---- links ---------------------------------------------------------------------------------

TEXT_SUFFIXES = {".md", ".py", ".txt", ".toml", ".yml", ".yaml", ".ini", ".cfg"}
TEXT_NAMES = {"Makefile"}
# This file names what it looks for.
SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()

# The project's notes once lived in a folder beside the repository: a dead path for a clone.
SIBLING_FOLDER = re.compile(r"\.\./shared\b")
# A Markdown file named in prose or a docstring ("see contracts.md").
MARKDOWN_NAME = re.compile(r"(?<![\w./:-])([\w./-]*[\w-]\.md)\b")
# A Markdown link or image: [text](target) or ![alt](target).
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


@cache
def tracked_text_files() -> tuple[str, ...]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
    ).stdout.split("\0")
    return tuple(
        path
        for path in listed
        if path
        and path != SELF
        and (Path(path).suffix in TEXT_SUFFIXES or Path(path).name in TEXT_NAMES)
        and (ROOT / path).is_file()  # tracked but deleted in the working tree: skip
    )


def documentation_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def resolves_inside(base: Path, target: str) -> Path | None:
    """The file a relative reference names, if it lies inside the repository."""
    resolved = (base / target).resolve()
    return resolved if resolved.is_relative_to(ROOT) else None


def test_no_tracked_file_points_outside_the_repository() -> None:
    outside = []
    for path in tracked_text_files():
        text = (ROOT / path).read_text(errors="replace")
        if SIBLING_FOLDER.search(text):
            outside.append(f"{path}: a path into a folder beside the repository")
        for name in set(MARKDOWN_NAME.findall(text)):
            here = resolves_inside((ROOT / path).parent, name)
            at_root = resolves_inside(ROOT, name)
            if not any(p is not None and p.is_file() for p in (here, at_root)):
                outside.append(f"{path}: names {name}, which is not in the repository")
    assert not outside, "\n".join(outside)


def test_every_relative_link_in_the_docs_leads_to_a_file() -> None:
    broken = []
    for page in documentation_pages():
        for target in MARKDOWN_LINK.findall(page.read_text()):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL (https:, mailto:) or an anchor on the same page
            file_part = target.split("#", 1)[0]
            resolved = resolves_inside(page.parent, file_part)
            if resolved is None or not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "links to nothing inside the repository:\n" + "\n".join(broken)


def test_every_anchor_in_the_docs_names_a_heading() -> None:
    broken = []
    for page in documentation_pages():
        for target in MARKDOWN_LINK.findall(page.read_text()):
            file_part, _, anchor = target.partition("#")
            if not anchor or re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue
            linked = (page.parent / file_part).resolve() if file_part else page
            if linked.suffix == ".md" and linked.is_file() and anchor not in anchors(linked):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "anchors that match no heading:\n" + "\n".join(broken)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to '-'."""
    found = set()
    for line in page.read_text().splitlines():
        heading = re.match(r"^#{1,6}\s+(.*)$", line)
        if heading:
            text = heading.group(1).strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return found
