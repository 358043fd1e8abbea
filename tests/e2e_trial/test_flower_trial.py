"""The filesystem:// broker carries the task events and remote control that Flower reads."""

from __future__ import annotations

import pytest
import requests

from hub.demo.processes import http_ok
from tests.e2e_trial.conftest import FLOWER_AUTH, FLOWER_PORT, TrialStack, wait_for

FLOWER = f"http://127.0.0.1:{FLOWER_PORT}"


def test_flower_sees_the_tasks_and_the_workers_of_a_trial_hub(
    trial_stack: TrialStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    supervisor = trial_stack.supervisor
    # Flower waits 1 s for the workers' answers to its refresh by default; over trial mode's
    # polled filesystem broker on a busy machine they come later (Flower reads FLOWER_* options).
    monkeypatch.setenv("FLOWER_INSPECT_TIMEOUT", "10000")
    flower = supervisor.hub("flower", "flower")
    supervisor.wait_until(flower, http_ok(f"{FLOWER}/healthcheck"), timeout=30)
    supervisor.wait_for_log(flower, "Connected to", timeout=30)  # the event stream

    order_id = trial_stack.post()
    trial_stack.wait_status([order_id], "completed", timeout=30)

    def seen() -> bool:
        tasks = requests.get(f"{FLOWER}/api/tasks", auth=FLOWER_AUTH, timeout=5).json()
        done = {
            t["name"] for t in tasks.values() if t["state"] == "SUCCESS" and order_id in t["args"]
        }
        return done == {"hub.step.inventory", "hub.step.fulfillment", "hub.step.invoice"}

    wait_for(seen, timeout=20, what="Flower to see the order's three tasks succeed")

    # Flower's refresh asks the workers over the broker; on a busy machine a first ask can come
    # back before they answer (an empty list), so it is asked again until they have.
    def workers() -> set[str]:
        found = requests.get(f"{FLOWER}/api/workers?refresh=1", auth=FLOWER_AUTH, timeout=20)
        return {name.split("@")[0] for name in found.json()}

    wait_for(
        lambda: {"hubtrial-worker1", "hubtrial-worker2"} <= workers(),
        timeout=90,
        what="Flower to list both trial workers",
    )
