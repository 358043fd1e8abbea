"""What an operator sees of a running hub: ``hub status`` and the API's ``/metrics``."""

from __future__ import annotations

import os
import subprocess
import sys

import requests
from prometheus_client.parser import text_string_to_metric_families

from hub.settings import get_settings
from tests.e2e.conftest import Stack
from tests.e2e.test_flow import post_orders, wait_completed


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name}{labels}")


def test_status_and_metrics_of_a_running_hub(stack: Stack) -> None:
    order_ids = post_orders(stack, 3)
    wait_completed(order_ids, timeout=90)

    status = subprocess.run(
        [sys.executable, "-m", "hub", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "160"},
    )
    scraped = requests.get(f"{stack.api_url}/metrics", timeout=30).text

    assert status.returncode == 0, status.stdout + status.stderr
    assert "Workers online: 2" in status.stdout
    assert "completed" in status.stdout
    assert metric(scraped, "hub_orders_completed_total") >= 3
    assert metric(scraped, "hub_step_duration_seconds_count", step="invoice") >= 3
    prefix = get_settings().queue_prefix
    assert metric(scraped, "hub_queue_messages", queue=f"{prefix}.inventory") == 0
    assert metric(scraped, "hub_dependency_up", service="rabbitmq") == 1
