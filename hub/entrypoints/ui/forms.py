"""What the failures page reads from a request: filters, form bodies, where to go back, flashes.

Everything here comes from a browser, so everything is checked; nothing is trusted as HTML.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, unquote, urlencode

from fastapi import Request, Response
from fastapi.responses import PlainTextResponse

from hub.core.registry import REGISTRY
from hub.core.statuses import FAILURE_KINDS
from hub.entrypoints.ui.operator_auth import form_token_valid, same_origin
from hub.services.replay import FailureFilter
from hub.settings import Settings

log = logging.getLogger("hub.ui")

FILTER_FIELDS = ("step", "kind", "code", "since", "until")
MAX_FORM_BYTES = 16 * 1024
MAX_FORM_FIELDS = 16
FLASH_COOKIE = "hub_ui_flash"
FLASH_LEVELS = ("ok", "info", "error")
HOME = "/ui/failures"


class FormError(Exception):
    """A form body the page would never send (wrong type, too large, garbled)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Filters:
    """The list's filters as typed (to show them again) and as a query (when they are valid)."""

    values: dict[str, str]
    # None when a filter is invalid: the page then lists nothing rather than more than asked.
    criteria: FailureFilter | None
    problems: list[str] = field(default_factory=list)

    def query_string(self, **changes: str) -> str:
        merged = {**self.values, **changes}
        return urlencode({k: v for k, v in merged.items() if v})


def parse_moment(text: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is taken as UTC (what the page shows)."""
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def read_filters(params: Mapping[str, str]) -> Filters:
    values = {name: params.get(name, "").strip()[:64] for name in FILTER_FIELDS}
    problems = []
    if values["step"] and values["step"] not in REGISTRY.step_names:
        problems.append(f"step must be one of {', '.join(REGISTRY.step_names)}")
    if values["kind"] and values["kind"] not in FAILURE_KINDS:
        problems.append(f"error kind must be one of {', '.join(FAILURE_KINDS)}")
    moments: dict[str, datetime | None] = {}
    for name in ("since", "until"):
        try:
            moments[name] = parse_moment(values[name]) if values[name] else None
        except ValueError:
            problems.append(f"{name} is not a date and time (e.g. 2026-11-01T09:30)")
            moments[name] = None
    if problems:
        return Filters(values, None, problems)
    criteria = FailureFilter(
        step=values["step"] or None,
        error_kind=values["kind"] or None,
        code=values["code"] or None,
        since=moments["since"],
        until=moments["until"],
    )
    return Filters(values, criteria)


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body of at most MAX_FORM_BYTES (no multipart: our forms never send it)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise FormError(415, "send an application/x-www-form-urlencoded form")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            raise FormError(413, f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormError(400, "the form could not be read") from exc
    return dict(pairs)


async def checked_form(
    request: Request, settings: Settings, operator: str
) -> dict[str, str] | Response:
    """The posted form, or the refusal of a forged or malformed one."""
    try:
        form = await read_form(request)
    except FormError as exc:
        return PlainTextResponse(str(exc), status_code=exc.status)
    if not same_origin(request) or not form_token_valid(settings, operator, form.get("token", "")):
        log.warning("operator form refused: cross-origin or bad token (%s)", operator)
        return PlainTextResponse(
            "refused: this form did not come from the failures page "
            "(cross-origin, or its token is missing or expired); reload the page and retry",
            status_code=403,
        )
    return form


def safe_next(value: str | None) -> str:
    """Where to return after an action: a page of ours, never another site (open redirect)."""
    if value and value.startswith("/ui/") and value.isprintable() and "\\" not in value:
        return value
    return HOME


@dataclass(frozen=True)
class Flash:
    level: str
    text: str


def set_flash(response: Response, flash: Flash) -> None:
    response.set_cookie(
        FLASH_COOKIE,
        quote(f"{flash.level}:{flash.text[:300]}", safe=""),
        max_age=60,
        path="/ui",
        httponly=True,
        samesite="strict",
    )


def take_flash(request: Request) -> Flash | None:
    """The message left by the last action, if any; the caller clears the cookie."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    level, _, text = unquote(raw).partition(":")
    return Flash(level, text) if level in FLASH_LEVELS and text else None


def clear_flash(response: Response) -> None:
    response.delete_cookie(FLASH_COOKIE, path="/ui", httponly=True, samesite="strict")
