"""Flower refuses to start without credentials unless told to run open; no secret on argv."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from hub.entrypoints.cli.flower import FlowerAuthMissing, basic_auth, flower_argv
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
