"""The local cluster's layout and the hub's failover broker URLs, as data (no I/O)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cluster.layout import Layout
from bench.cluster_chaos.stalls import longest_gap
from hub.observability.health import broker_where
from hub.settings import Settings, SettingsError, load_settings

LAYOUT = Layout(base_dir=Path("/tmp/cluster"), prefix="hubc", amqp_base=5701, dist_base=25701)


def test_nodes_have_their_own_names_and_ports_clear_of_the_machines_node() -> None:
    nodes = LAYOUT.nodes
    assert [n.name for n in nodes] == ["hubc1@localhost", "hubc2@localhost", "hubc3@localhost"]
    assert [n.amqp_port for n in nodes] == [5701, 5702, 5703]
    assert [n.dist_port for n in nodes] == [25701, 25702, 25703]
    taken = {5672, 25672, 15672, *range(35672, 35683)}
    ctl_min, ctl_max = LAYOUT.ctl_ports
    assert not taken & {*(n.amqp_port for n in nodes), *(n.dist_port for n in nodes)}
    assert not taken & set(range(ctl_min, ctl_max + 1))


def test_each_node_reads_its_own_files_not_the_machines() -> None:
    node = LAYOUT.node(2)
    env = LAYOUT.node_env(node)
    assert env["RABBITMQ_NODENAME"] == "hubc2@localhost"
    assert env["RABBITMQ_CONF_ENV_FILE"].startswith("/tmp/cluster/hubc2/")
    assert env["RABBITMQ_ENABLED_PLUGINS_FILE"].startswith("/tmp/cluster/hubc2/")
    assert env["HOME"] == "/tmp/cluster/home"  # the cluster's own cookie
    assert "listeners.tcp.1 = 127.0.0.1:5702" in node.config_text()


@pytest.mark.parametrize(
    ("first", "order"), [(1, [5701, 5702, 5703]), (2, [5702, 5703, 5701]), (3, [5703, 5701, 5702])]
)
def test_each_worker_starts_its_failover_list_at_another_node(first: int, order: list[int]) -> None:
    urls = LAYOUT.broker_url(first=first).split(";")
    assert [int(url.split(":")[3].split("/")[0]) for url in urls] == order


def test_settings_take_a_failover_list_of_amqp_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_BROKER_URL", LAYOUT.broker_url())
    assert load_settings().broker_url == LAYOUT.broker_url()


def test_settings_refuse_a_list_with_a_url_that_is_not_amqp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HUB_BROKER_URL", "amqp://guest:guest@127.0.0.1:5701//;redis://x:6379")
    with pytest.raises(SettingsError, match="HUB_BROKER_URL"):
        load_settings()


def test_where_we_looked_names_every_node_with_passwords_masked() -> None:
    url = "amqp://hub:s3cret@10.0.0.1:5672/hub;amqp://hub:s3cret@10.0.0.2:5672/hub"
    where = broker_where(url)
    assert "10.0.0.1:5672" in where and "10.0.0.2:5672" in where
    assert "s3cret" not in where
    assert Settings.model_construct().broker_url.count(";") == 0  # one node by default


@pytest.mark.parametrize(
    ("times", "start", "end", "stall"),
    [
        ([0.0, 0.5, 1.0, 1.5, 2.0], 0.7, 2.0, 0.5),  # steady: no stall
        ([0.0, 0.5, 4.5, 5.0], 0.7, 6.0, 4.0),  # the gap began before the fault: counted whole
        ([0.0, 0.5], 1.0, 3.0, 2.5),  # nothing after the fault: stalled to the window's end
        ([5.0], 1.0, 6.0, 4.0),  # nothing before: counted from the fault
    ],
)
def test_a_stall_is_the_longest_quiet_stretch_overlapping_the_window(
    times: list[float], start: float, end: float, stall: float
) -> None:
    assert longest_gap(times, start, end) == pytest.approx(stall)
