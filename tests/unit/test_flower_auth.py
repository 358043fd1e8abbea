"""Flower refuses to start without credentials unless told to run open; no secret on argv."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from hub.core.login_policy import LoginPolicy
from hub.entrypoints.cli.flower import (
    FlowerAuthMissing,
    basic_auth,
    close_write_api,
    flower_argv,
    slow_down_guessing,
)
from hub.entrypoints.cli.main import cli
from hub.settings import Settings, SettingsError, get_settings, load_settings


def settings(**flower: Any) -> Settings:
    return get_settings().model_copy(update=flower)


def test_without_credentials_flower_is_refused_naming_both_variables() -> None:
    with pytest.raises(FlowerAuthMissing, match="HUB_FLOWER_USER and HUB_FLOWER_PASSWORD"):
        basic_auth(settings(flower_user=None, flower_password=None))


def test_a_user_without_password_is_refused_naming_the_password() -> None:
    with pytest.raises(FlowerAuthMissing, match="set HUB_FLOWER_PASSWORD "):
        basic_auth(settings(flower_user="ops", flower_password=None))


def test_credentials_become_flowers_basic_auth_and_stay_off_the_command_line() -> None:
    chosen = settings(flower_user="ops", flower_password=SecretStr("s3cret"), flower_port=5601)

    assert basic_auth(chosen) == "ops:s3cret"
    argv = flower_argv(chosen)
    assert argv == ["flower", "--address=127.0.0.1", "--port=5601"]
    assert not any("s3cret" in arg for arg in argv)


def test_open_mode_runs_without_auth_only_when_asked() -> None:
    assert basic_auth(settings(flower_open=True)) is None


def test_a_comma_in_the_password_is_refused_because_flower_splits_on_it() -> None:
    chosen = settings(flower_user="ops", flower_password=SecretStr("a,b"))
    with pytest.raises(FlowerAuthMissing, match="comma"):
        basic_auth(chosen)


def test_hub_flower_without_credentials_exits_with_the_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HUB_FLOWER_USER", "HUB_FLOWER_PASSWORD", "HUB_FLOWER_OPEN"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()

    result = CliRunner().invoke(cli, ["flower"])

    assert result.exit_code == 2
    assert "Flower will not start without authentication" in result.output


def test_a_user_name_flower_cannot_parse_stops_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_FLOWER_USER", "ops:admin")
    with pytest.raises(SettingsError, match="HUB_FLOWER_USER"):
        load_settings()


def test_every_route_of_the_installed_flower_is_read_only_once_its_write_api_is_closed() -> None:
    from flower.urls import handlers
    from tornado.web import RequestHandler, URLSpec

    close_write_api()
    served = [h.handler_class if isinstance(h, URLSpec) else h[1] for h in handlers]

    def writes(cls: type[RequestHandler]) -> list[str]:
        # A method tornado lets through and the handler implements (the default answers 405).
        return [
            method
            for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS")
            if method in cls.SUPPORTED_METHODS
            and getattr(cls, method.lower()) is not getattr(RequestHandler, method.lower())
        ]

    writers = {cls.__name__: writes(cls) for cls in served if writes(cls)}
    assert writers == {}
    # The write API was there to close: async-apply, revoke and shutdown are POST handlers.
    from flower.api import control, tasks

    for handler in (tasks.TaskAsyncApply, control.TaskRevoke, control.WorkerShutDown):
        assert "post" in vars(handler)


def test_300_wrong_flower_passwords_get_ten_checked_then_the_account_is_locked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import base64
    from types import SimpleNamespace

    import tornado.web
    from flower.views import BaseHandler
    from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

    monkeypatch.setattr(BaseHandler, "get_current_user", BaseHandler.get_current_user)
    counter = slow_down_guessing(LoginPolicy(backoff=0, lock_after=10))
    application = tornado.web.Application()
    application.options = SimpleNamespace(basic_auth=["ops:right-password"], auth=None)  # type: ignore[attr-defined]

    def login(password: str) -> int:
        token = base64.b64encode(f"ops:{password}".encode()).decode()
        request = HTTPServerRequest(
            start_line=RequestStartLine("GET", "/api/tasks", "HTTP/1.1"),
            headers=HTTPHeaders({"Authorization": f"Basic {token}", "Host": "localhost"}),
            connection=SimpleNamespace(set_close_callback=lambda _: None, context=None),  # type: ignore[arg-type]
        )
        handler = BaseHandler(application, request)
        try:
            handler.get_current_user()
        except tornado.web.HTTPError as exc:
            return exc.status_code
        return 200

    answers = [login(f"guess-{n}") for n in range(300)]

    assert answers[:10] == [401] * 10 and set(answers[10:]) == {429}
    assert login("right-password") == 429  # locked: not even the right one is checked
    counter.succeeded()  # what a restart of Flower does
    assert login("right-password") == 200
