"""Trial mode is chosen by probing PostgreSQL's and RabbitMQ's addresses over TCP: the probe is
real here (a listener of the test's own, or a port where nothing listens), so it is not a unit
test."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from hub.settings import Settings, get_settings
from hub.trial import mode as trial

CLOSED = "127.0.0.1:1"  # nothing listens there


@pytest.fixture
def listening() -> Iterator[str]:
    """An address where something accepts connections, as a running service would."""
    server = socket.create_server(("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def unset(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Remove a variable and have it restored after the test (see tests/unit/test_trial.py)."""
    monkeypatch.setenv(name, "")
    monkeypatch.delenv(name)


@pytest.fixture
def nothing_configured(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No HUB_*_URL anywhere (the tests' own environment sets them), no trial flag."""
    for name in ("HUB_DATABASE_URL", "HUB_BROKER_URL", "HUB_TRIAL", "HUB_TRIAL_DIR"):
        unset(monkeypatch, name)
    yield
    get_settings.cache_clear()  # the demo's switch must not leak into other tests


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # a .env of the checkout would not count


@pytest.mark.usefixtures("nothing_configured")
def test_nothing_configured_and_nothing_answering_is_trial_mode() -> None:
    mode = trial.choose_mode(settings(trial_probe_postgres=CLOSED, trial_probe_rabbitmq=CLOSED))
    assert mode.trial
    assert f"nothing answers at {CLOSED} (PostgreSQL)" in mode.why


@pytest.mark.usefixtures("nothing_configured")
def test_services_answering_on_the_default_ports_is_real_mode(listening: str) -> None:
    mode = trial.choose_mode(
        settings(trial_probe_postgres=listening, trial_probe_rabbitmq=listening)
    )
    assert not mode.trial and not mode.hint


@pytest.mark.usefixtures("nothing_configured")
def test_half_a_stack_is_real_mode_with_a_hint(listening: str) -> None:
    mode = trial.choose_mode(settings(trial_probe_postgres=listening, trial_probe_rabbitmq=CLOSED))
    assert not mode.trial
    assert "PostgreSQL answers" in mode.why and "HUB_TRIAL=true" in mode.hint


@pytest.mark.usefixtures("nothing_configured")
def test_the_demo_switches_itself_and_its_children_to_trial_mode(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HUB_TRIAL_DIR", str(tmp_path))  # restored after the test
    monkeypatch.setenv("HUB_TRIAL_PROBE_POSTGRES", CLOSED)
    monkeypatch.setenv("HUB_TRIAL_PROBE_RABBITMQ", CLOSED)
    (tmp_path / "broker" / "queue").mkdir(parents=True)
    (tmp_path / "broker" / "queue" / "stale.hub.inventory.msg").write_text("{}")
    screen = io.StringIO()

    chosen = trial.settings_for_demo(settings(), console=Console(file=screen, width=200))

    assert chosen.trial and chosen.embedded_broker
    assert chosen.database_url == f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    assert os.environ["HUB_TRIAL"] == "true"  # what the demo's children inherit
    assert get_settings() == chosen
    assert list((tmp_path / "broker" / "queue").iterdir()) == []  # a fresh start
    assert "TRIAL MODE" in screen.getvalue() and "Production needs" in screen.getvalue()


@pytest.mark.usefixtures("nothing_configured")
def test_the_demo_keeps_real_settings_when_the_services_answer(listening: str) -> None:
    given = settings(trial_probe_postgres=listening, trial_probe_rabbitmq=listening)
    assert trial.settings_for_demo(given, console=Console(file=io.StringIO())) is given
