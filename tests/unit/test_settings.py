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


# ---- the systems, one structure read from HUB_<SYSTEM>_* --------------------------------


def test_the_old_variable_names_fill_each_systems_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_ERP_URL", "http://erp.example:9000")
    monkeypatch.setenv("HUB_ERP_TOKEN", "s3cret")
    monkeypatch.setenv("HUB_HTTP_READ_TIMEOUT", "7")
    monkeypatch.setenv("HUB_WAREHOUSE_READ_TIMEOUT", "2.5")

    systems = load_settings().systems

    assert (systems["erp"].url, systems["erp"].token.get_secret_value()) == (
        "http://erp.example:9000",
        "s3cret",
    )
    assert systems["erp"].adapter == "http"
    assert (systems["erp"].read_timeout, systems["warehouse"].read_timeout) == (7.0, 2.5)
    assert systems["accounting"].adapter == "http"  # the registry's default


def test_a_step_policy_wins_over_its_systems_which_wins_over_the_hubs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HUB_ERP_RETRY__MAX_ATTEMPTS", "3")
    monkeypatch.setenv("HUB_RETRY_INVENTORY__MAX_ATTEMPTS", "5")
    monkeypatch.setenv("HUB_ACCOUNTING_RETRY__MAX_ATTEMPTS", "4")
    settings = load_settings()

    assert settings.retry_policy("inventory").max_attempts == 5
    assert settings.retry_policy("invoice").max_attempts == 4
    assert settings.retry_policy("fulfillment") == settings.retry


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HUB_RETRY_INVENTROY__MAX_ATTEMPTS", "2", "no step named 'inventroy'.*inventory"),
        ("HUB_ERP_ADAPTER", "soap", "HUB_ERP_ADAPTER: 'soap' is not an adapter of erp"),
        ("HUB_ERP_TIMEOUT", "3", "HUB_ERP_TIMEOUT"),
        ("HUB_WAREHOUSE_CONNECT_TIMEOUT", "0", "HUB_WAREHOUSE_CONNECT_TIMEOUT"),
        ("HUB_ERP_RETRY__MAX_ATTEMPTS", "0", "HUB_ERP_RETRY__MAX_ATTEMPTS"),
    ],
)
def test_a_bad_system_or_step_setting_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=message):
        load_settings()


def test_the_adapter_of_a_system_is_built_from_its_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from adapters.erp import ErpClient
    from hub import bootstrap

    monkeypatch.setenv("HUB_ERP_URL", "http://erp.example:9000/")
    monkeypatch.setenv("HUB_ERP_CONNECT_TIMEOUT", "1.5")

    built = bootstrap.adapter(load_settings(), "erp")

    assert isinstance(built, ErpClient)
    assert (built.base_url, built.timeout) == ("http://erp.example:9000", (1.5, 10.0))


def test_a_bad_queue_prefix_is_said_in_words_not_as_a_regular_expression(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HUB_QUEUE_PREFIX", "Has Spaces")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    said = str(raised.value)
    assert "HUB_QUEUE_PREFIX: must be a lowercase letter, then up to 30 lowercase letters" in said
    assert "pattern" not in said and "^" not in said
