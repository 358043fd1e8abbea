"""Settings fail fast, naming the variable."""

from __future__ import annotations

import pytest

from hub.settings import SettingsError, load_settings


def test_a_bare_postgresql_url_is_pointed_at_psycopg2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_DATABASE_URL", "postgresql://u@db:5432/hub")
    assert load_settings().database_url == "postgresql+psycopg2://u@db:5432/hub"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HUB_API_PORT", "eighty"),
        ("HUB_API_PORT", "70000"),
        ("HUB_BROKER_URL", "redis://localhost"),
        ("HUB_QUEUE_PREFIX", "Has Spaces"),
        ("HUB_RETRY__MAX_ATTEMPTS", "0"),
    ],
)
def test_a_bad_value_stops_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_a_step_may_have_its_own_retry_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_RETRY_INVOICE__MAX_ATTEMPTS", "2")
    settings = load_settings()
    assert settings.retry_policy("invoice").max_attempts == 2
    assert settings.retry_policy("inventory") == settings.retry
