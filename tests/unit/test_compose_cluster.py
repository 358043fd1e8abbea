"""docker-compose.yml's `cluster` profile: three RabbitMQ nodes that form one cluster and the
hub's processes spread over them. Checked as data (no Docker engine runs on our machines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
NODES = ("rabbit1", "rabbit2", "rabbit3")
WORKERS = ("worker-a", "worker-b", "worker-c")


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return {name: s for name, s in services.items() if "cluster" in s.get("profiles", [])}


def first_node(service: dict[str, Any]) -> str:
    url: str = service["environment"]["HUB_BROKER_URL"]
    return url.split(";")[0].split("@")[1].split(":")[0]


def test_three_nodes_with_one_cookie_found_by_name(cluster: dict[str, Any]) -> None:
    assert set(NODES) <= set(cluster)
    cookies = {cluster[n]["environment"]["RABBITMQ_ERLANG_COOKIE"] for n in NODES}
    assert len(cookies) == 1
    assert {cluster[n]["hostname"] for n in NODES} == set(NODES)
    peers = (ROOT / "deploy/cluster/rabbitmq-cluster.conf").read_text()
    for node in NODES:
        assert f"rabbit@{node}" in peers
        mounts = cluster[node]["volumes"]
        assert any(m.startswith("./deploy/cluster/rabbitmq-cluster.conf:") for m in mounts)
        assert all(p.startswith("127.0.0.1:") for p in cluster[node]["ports"])
        assert int(cluster[node]["healthcheck"]["retries"]) >= 5


def test_each_worker_service_starts_at_another_node_and_lists_all_three(
    cluster: dict[str, Any],
) -> None:
    assert {first_node(cluster[w]) for w in WORKERS} == set(NODES)
    for name in (*WORKERS, "api", "relay", "migrate"):
        url = cluster[name]["environment"]["HUB_BROKER_URL"]
        assert sorted(u.split("@")[1].split(":")[0] for u in url.split(";")) == list(NODES)
        # The settings take the failover list as it is.
        assert Settings(broker_url=url).broker_url == url


def test_hub_processes_wait_for_the_schema_and_the_nodes(cluster: dict[str, Any]) -> None:
    for name in (*WORKERS, "api", "relay"):
        deps = cluster[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert all(deps[n]["condition"] == "service_healthy" for n in NODES)
        assert cluster[name]["restart"] == "unless-stopped"
