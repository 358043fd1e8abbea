"""Secrets and customer data stay where they belong.

A run with a refused order, a flaky then unauthorized one and a clean one; then every log line
of the hub's processes, every audit row, error text and outbox row of the run, and a copy of
every task message the broker carried are searched for the downstream tokens, the sender's API
key, and the customer's email and street. None may appear, and each task message carries the
order id and nothing else.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlsplit

import requests
from kombu import Queue
from sqlalchemy import text

from hub.broker.topology import Topology
from hub.db.engine import get_engine
from hub.demo.processes import Child
from hub.settings import get_settings
from tests import support
from tests.conftest import TEST_ENV
from tests.e2e.conftest import Stack
from tests.factories import order_payload

# The sandbox stands in for the ERP, warehouse and accounting systems: what it logs is theirs.
HUB_PROCESSES = ("api", "relay", "worker1", "worker2")


def post(stack: Stack, *, email: str, street: str) -> str:
    payload = order_payload(
        customer={"id": "C-42", "name": "Grace Hopper", "email": email},
        ship_to={
            "name": "Grace Hopper",
            "line1": street,
            "city": "Arlington",
            "postal_code": "22201",
            "country": "US",
        },
    )
    response = requests.post(
        f"{stack.api_url}/orders", json=payload, headers=stack.headers, timeout=10
    )
    assert response.status_code == 202, response.text
    order_id: str = response.json()["order_id"]
    return order_id


def log_of(stack: Stack, name: str) -> str:
    child = stack.child(name)
    assert isinstance(child, Child)
    return child.log_path.read_text(errors="replace")


def wait_status(order_id: str, status: str) -> None:
    support.wait_for(
        lambda: support.statuses([order_id]).get(order_id) == status,
        timeout=60,
        what=f"order {order_id} to be {status}",
    )


def rows(sql: str, **params: Any) -> list[dict[str, Any]]:
    with get_engine().connect() as connection:
        return [dict(row._mapping) for row in connection.execute(text(sql), params)]


def last_seq() -> int:
    return int(rows("SELECT coalesce(max(seq), 0) AS seq FROM integration_events")[0]["seq"])


def test_no_token_key_email_or_address_leaks_into_logs_audit_errors_or_messages(
    stack: Stack,
) -> None:
    email = f"grace.{uuid.uuid4().hex[:8]}@private.example"
    street = f"{uuid.uuid4().int % 900 + 100} Confidential Lane"
    api_key = stack.headers["Authorization"].removeprefix("Bearer ")
    secrets = {
        "ERP token": TEST_ENV["HUB_ERP_TOKEN"],
        "warehouse token": TEST_ENV["HUB_WAREHOUSE_TOKEN"],
        "accounting token": TEST_ENV["HUB_ACCOUNTING_TOKEN"],
        "API key": api_key,
        "customer email": email,
        "customer street": street,
    }
    broker_password = urlsplit(get_settings().broker_url).password or ""
    if len(broker_password) >= 8:  # "guest" would match the user name that logs may show
        secrets["broker password"] = broker_password
    start = last_seq()
    topology = Topology(get_settings().queue_prefix)

    with support.broker_connection() as connection:
        # Declared before anything is posted, so it gets a copy of every task message.
        spy = Queue(
            f"{topology.prefix}.spy.{uuid.uuid4().hex[:8]}",
            topology.exchange,
            routing_key="#",
            exclusive=True,
            auto_delete=True,
        ).bind(connection.default_channel)
        spy.declare()

        stack.sandbox.set_faults("erp", fail_next=1, status=422, body="html")
        refused = post(stack, email=email, street=street)
        wait_status(refused, "failed")
        stack.sandbox.set_faults("warehouse", fail_next=1, status=503)
        stack.sandbox.set_faults("accounting", fail_next=1, status=401)
        unauthorized = post(stack, email=email, street=street)
        wait_status(unauthorized, "failed")
        completed = post(stack, email=email, street=street)
        wait_status(completed, "completed")

        messages = []
        while (message := spy.get(no_ack=True)) is not None:
            messages.append(message)

    order_ids = {refused, unauthorized, completed}
    # 1 (inventory refused) + 4 (inventory, fulfillment, its retry, invoice) + 3 (all steps)
    assert len(messages) == 8
    for message in messages:
        assert message.content_type == "application/json"
        args, kwargs, embed = json.loads(message.body)
        assert len(args) == 1 and args[0] in order_ids and kwargs == {}
        assert all(link["args"] == args for link in embed.get("chain") or [])
    assert {json.loads(m.body)[0][0] for m in messages} == order_ids

    ids = [str(i) for i in order_ids]
    events = rows("SELECT event_type, detail FROM integration_events WHERE seq > :s", s=start)
    kinds = [e["event_type"] for e in events]
    assert "step.failed" in kinds and "step.retry_scheduled" in kinds, "no error texts to search"
    failures = rows(
        "SELECT row_to_json(f)::text AS row FROM failures f WHERE order_id::text = ANY(:ids)",
        ids=ids,
    )
    assert len(failures) == 2
    steps = rows(
        "SELECT row_to_json(s)::text AS row FROM step_outcomes s WHERE order_id::text = ANY(:ids)",
        ids=ids,
    )
    outbox = rows(
        "SELECT row_to_json(o)::text AS row FROM outbox o WHERE order_id::text = ANY(:ids)",
        ids=ids,
    )
    logs = {name: log_of(stack, name) for name in HUB_PROCESSES}
    assert all(logs.values()), "a process log is empty: nothing to search"

    places = {
        **{f"{name}.log": text_ for name, text_ in logs.items()},
        "audit rows": json.dumps([e["detail"] for e in events]),
        "failures": json.dumps([f["row"] for f in failures]),
        "step outcomes": json.dumps([s["row"] for s in steps]),
        "outbox": json.dumps([o["row"] for o in outbox]),
        "task messages": json.dumps(
            [{"body": m.body, "headers": m.headers, "properties": m.properties} for m in messages],
            default=str,
        ),
    }
    leaks = [
        f"{what} in {where}"
        for what, secret in secrets.items()
        for where, haystack in places.items()
        if secret in haystack
    ]
    assert leaks == []
