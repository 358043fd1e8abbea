"""The end-to-end flow, smaller, in trial mode: real processes on SQLite and filesystem://."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from hub.settings import get_settings
from tests.e2e_trial.conftest import TrialStack
from tests.factories import order_payload


def assert_exactly_once(stack: TrialStack, order_ids: list[str]) -> None:
    effects = stack.sandbox.effects_per_key()
    for step in get_settings().pipeline.steps:
        counted = {
            f"{order_id}:{step}": effects[step][f"{order_id}:{step}"] for order_id in order_ids
        }
        missing = [key for key, n in counted.items() if n == 0]
        doubled = {key: n for key, n in counted.items() if n > 1}
        assert not missing, f"{step}: {len(missing)} orders have no effect"
        assert not doubled, f"{step}: applied more than once: {doubled}"


def view(stack: TrialStack, order_id: str) -> dict[str, Any]:
    reply = requests.get(f"{stack.api_url}/orders/{order_id}", headers=stack.headers, timeout=5)
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


def test_a_batch_completes_with_one_effect_per_order_and_step(trial_stack: TrialStack) -> None:
    with ThreadPoolExecutor(4) as pool:
        order_ids = list(pool.map(lambda _: trial_stack.post(), range(20)))

    trial_stack.wait_status(order_ids, "completed", timeout=60)

    assert_exactly_once(trial_stack, order_ids)
    kinds = [event["event_type"] for event in view(trial_stack, order_ids[0])["timeline"]]
    # The timeline is in commit order and order.queued is written after the broker's confirm,
    # by which time a worker may already have started the first step.
    assert kinds[0] == "order.received" and kinds.count("order.queued") == 1
    assert kinds.count("step.succeeded") == 3
    assert kinds[-1] == "order.completed"


def test_a_transient_failure_is_retried_after_its_countdown(trial_stack: TrialStack) -> None:
    trial_stack.sandbox.set_faults("warehouse", fail_next=1, status=503)

    order_id = trial_stack.post()

    trial_stack.wait_status([order_id], "completed", timeout=40)
    assert_exactly_once(trial_stack, [order_id])
    order = view(trial_stack, order_id)
    assert order["steps"]["fulfillment"]["attempts"] == 2
    retries = [e for e in order["timeline"] if e["event_type"] == "step.retry_scheduled"]
    assert [(e["step"], e["detail"]["http_status"]) for e in retries] == [("fulfillment", 503)]
    assert retries[0]["detail"]["delay_s"] >= 1


def test_an_out_of_stock_order_fails_and_its_replay_completes_it(trial_stack: TrialStack) -> None:
    trial_stack.sandbox.set_stock({"SKU-020": 0})
    order_id = trial_stack.post(
        order_payload(lines=[{"sku": "SKU-020", "qty": 1, "unit_price": "9.99"}])
    )
    trial_stack.wait_status([order_id], "failed", timeout=30)

    listed = trial_stack.hub("failures", "list", "--code", "out_of_stock")
    assert listed.returncode == 0, listed.stderr
    assert order_id in listed.stdout
    [failure_id] = [line.split()[1] for line in listed.stdout.splitlines() if order_id in line]
    trial_stack.sandbox.set_stock({"SKU-020": 100})
    replayed = trial_stack.hub("replay", failure_id, "--reason", "restocked")

    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "replayed 1" in replayed.stdout
    trial_stack.wait_status([order_id], "completed", timeout=30)
    assert_exactly_once(trial_stack, [order_id])
    timeline = view(trial_stack, order_id)["timeline"]
    kinds = [event["event_type"] for event in timeline]
    assert kinds.count("order.failed") == 1 and kinds.count("failure.replayed") == 1
    assert kinds[-1] == "order.completed"
