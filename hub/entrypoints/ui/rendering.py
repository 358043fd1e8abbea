"""How every operator page is rendered and answered: autoescaped templates, security headers,
flash messages, and the redirect after an action.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from hub.entrypoints.ui.forms import Flash, clear_flash, safe_next, set_flash, take_flash

SECURITY_HEADERS = {
    # No script may run on these pages, whatever a downstream error message contains.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    # The buttons move stock and money: no framing (clickjacking), no caching, no leaks.
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Not "no-referrer": with it browsers send "Origin: null" on our own form posts.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def moment(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else ""


@lru_cache(maxsize=1)
def templates() -> Environment:
    env = Environment(
        loader=PackageLoader("hub.entrypoints.ui", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["moment"] = moment
    return env


def page(
    request: Request,
    template: str,
    status: int = 200,
    *,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    flash = take_flash(request)
    html = templates().get_template(template).render(flash=flash, **context)
    response = HTMLResponse(html, status_code=status, headers=headers or SECURITY_HEADERS)
    if flash is not None:
        clear_flash(response)
    return response


def back(next_page: str | None, flash: Flash) -> RedirectResponse:
    # 303: the browser follows with a GET, so a reload does not post the action again.
    response = RedirectResponse(safe_next(next_page), status_code=303)
    set_flash(response, flash)
    return response
