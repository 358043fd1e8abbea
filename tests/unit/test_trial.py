"""Trial mode: when ``hub demo`` chooses it, and what it changes (nothing anywhere else)."""

from __future__ import annotations

import multiprocessing
import socket
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier as BarrierType
from pathlib import Path

import pytest
from kombu import Connection
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from hub.bootstrap import create_celery_app
from hub.broker.celery_config import celery_config
from hub.broker.filesystem import Transport
from hub.db.dialect import insert_for
from hub.db.models import Order
from hub.settings import Settings, SettingsError, get_settings, load_settings
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
    """Remove a variable, and have it restored (or removed again) after the test.

    ``delenv(raising=False)`` of a variable that is not there records nothing, so one the code
    under test sets would outlive the test.
    """
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


# ---- the settings never take an embedded part without HUB_TRIAL ----------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [("HUB_BROKER_URL", "filesystem://localhost/"), ("HUB_DATABASE_URL", "sqlite:///x.db")],
)
def test_embedded_parts_are_refused_outside_trial_mode(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    unset(monkeypatch, "HUB_TRIAL")
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=f"{variable}: .*trial mode only"):
        load_settings()


def test_trial_mode_takes_sqlite_and_the_filesystem_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_TRIAL", "true")
    monkeypatch.setenv("HUB_DATABASE_URL", "sqlite:///x.db")
    monkeypatch.setenv("HUB_BROKER_URL", "filesystem://localhost/")
    loaded = load_settings()
    assert loaded.embedded_broker and loaded.database_url == "sqlite:///x.db"


# ---- choosing the mode ---------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_configured")
def test_a_configured_url_is_used_as_it_is_even_if_nothing_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HUB_BROKER_URL", "amqp://guest:guest@127.0.0.1:1//")
    mode = trial.choose_mode(settings(trial_probe_postgres=CLOSED, trial_probe_rabbitmq=CLOSED))
    assert not mode.trial and "HUB_BROKER_URL set" in mode.why


@pytest.mark.usefixtures("nothing_configured")
def test_hub_trial_asks_for_trial_mode_even_with_services_up(listening: str) -> None:
    mode = trial.choose_mode(
        settings(trial=True, trial_probe_postgres=listening, trial_probe_rabbitmq=listening)
    )
    assert mode.trial


# ---- what trial mode changes ---------------------------------------------------------------


def trial_settings(root: Path) -> Settings:
    return settings(
        trial=True,
        trial_dir=str(root),
        database_url=f"sqlite:///{root}/hub.sqlite3",
        broker_url="filesystem://localhost/",
    )


def test_the_filesystem_broker_gets_plain_queues_and_shared_folders(tmp_path: Path) -> None:
    config = celery_config(trial_settings(tmp_path))

    options = config["broker_transport_options"]
    assert "confirm_publish" not in options
    assert options["data_folder_in"] == options["data_folder_out"] == str(tmp_path / "broker/queue")
    assert options["processed_folder"] == str(tmp_path / "broker/processed")
    assert config["task_default_exchange_type"] == "direct"
    assert all(not queue.queue_arguments for queue in config["task_queues"])
    assert config["worker_pool"] == "threads"
    assert config["broker_transport"] == "hub.broker.filesystem:Transport"


def test_rabbitmq_keeps_quorum_queues_dead_lettering_and_confirms() -> None:
    config = celery_config(settings(broker_url="amqp://guest:guest@127.0.0.1:5672//"))

    assert config["broker_transport_options"] == {"confirm_publish": True}
    assert config["task_default_exchange_type"] == "topic"
    for queue in config["task_queues"]:
        assert queue.queue_arguments["x-queue-type"] == "quorum"
        assert "x-dead-letter-exchange" in queue.queue_arguments
    assert "worker_pool" not in config


def test_a_trial_message_is_only_seen_once_it_is_whole(tmp_path: Path) -> None:
    chosen = trial_settings(tmp_path)
    trial.make_broker_folders(chosen)
    queue = trial.broker_folders(chosen).queue
    (queue / "1_half-written.q.msg.part").write_text('{"bo')  # another process still writing

    with create_celery_app(chosen).connection_for_write() as connection:
        assert isinstance(connection.transport, Transport)
        channel = connection.channel()
        assert channel._size("q") == 0
        channel._put("q", {"body": "whole"})
        assert channel._size("q") == 1
        assert channel._get("q") == {"body": "whole"}
    assert [p.name for p in queue.iterdir()] == ["1_half-written.q.msg.part"]


def _bind_when_all_are_ready(
    options: dict[str, str], exchange: str, queue: str, ready: BarrierType
) -> None:
    with Connection("filesystem://localhost/", transport=Transport, transport_options=options) as c:
        channel = c.channel()
        ready.wait()
        channel._queue_bind(exchange, "", "", queue)


def test_workers_binding_to_a_new_exchange_at_once_all_stay_bound(tmp_path: Path) -> None:
    # Four processes as four trial workers starting together, each binding its remote-control
    # queue; forty new exchanges. kombu's own binding lost one in most rounds here.
    options = {
        "data_folder_in": str(tmp_path),
        "data_folder_out": str(tmp_path),
        "control_folder": str(tmp_path / "control"),
    }
    queues = {f"worker{n}.celery.pidbox" for n in range(4)}
    context = multiprocessing.get_context("fork")  # the test's own modules, already imported
    lost = {}
    for round_ in range(40):
        exchange = f"pidbox{round_}"
        ready = context.Barrier(len(queues))
        binders = [
            context.Process(target=_bind_when_all_are_ready, args=(options, exchange, q, ready))
            for q in sorted(queues)
        ]
        for binder in binders:
            binder.start()
        for binder in binders:
            binder.join(30)
        assert [b.exitcode for b in binders] == [0] * len(binders)
        with Connection(
            "filesystem://localhost/", transport=Transport, transport_options=options
        ) as c:
            bound = {row.queue for row in c.channel().get_table(exchange)}
        if bound != queues:
            lost[exchange] = sorted(queues - bound)
    assert lost == {}


@pytest.mark.parametrize(
    ("url", "dialect"),
    [("sqlite://", "sqlite"), ("postgresql+psycopg2://u@127.0.0.1:1/x", "postgresql")],
)
def test_upserts_speak_the_dialect_of_the_session(url: str, dialect: str) -> None:
    with Session(create_engine(url)) as session:  # nothing connects to compile a statement
        statement = insert_for(session, Order).values(external_id="x").on_conflict_do_nothing()
        assert statement.compile(dialect=session.get_bind().dialect).string.endswith(
            "ON CONFLICT DO NOTHING"
        )
        assert type(statement).__module__.startswith(f"sqlalchemy.dialects.{dialect}")


@pytest.mark.usefixtures("nothing_configured")
def test_hub_trial_wins_over_configured_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    # `HUB_TRIAL=true make demo` with a production .env or HUB_* exported: trial mode, never
    # the hub those URLs point at.
    monkeypatch.setenv("HUB_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/hub")
    monkeypatch.setenv("HUB_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    mode = trial.choose_mode(settings(trial=True))
    assert mode.trial and "HUB_TRIAL=true" in mode.why
