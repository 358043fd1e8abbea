"""An operator's first day, followed literally: the commands the docs give do what they say.

Each test drives one thing that once misled: an API restarted during a broker outage, two
``make worker`` on one host.
"""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import requests
from sqlalchemy.engine import make_url

from hub import bootstrap
from hub.demo.processes import Supervisor
from hub.settings import get_settings
from tests import ports, support
from tests.e2e.conftest import LOGS, Stack
from tests.e2e.test_flow import wait_completed
from tests.factories import order_payload
from tests.tcp_gate import TcpGate


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.RequestException:
        return False
    return True


def _broker_through(port: int) -> str:
    """The tests' broker URL, reached through a gate on ``port``."""
    parts = urlsplit(get_settings().broker_url)
    credentials = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{port}"))


def test_the_api_and_relay_start_with_rabbitmq_down_and_publish_once_it_is_back(
    stack: Stack,
) -> None:
    real = urlsplit(get_settings().broker_url)
    gate = TcpGate((real.hostname or "127.0.0.1", real.port or 5672), ports.port("first_day_gate"))
    api_port = ports.port("first_day_gate", 1)
    env = {"HUB_BROKER_URL": _broker_through(gate.port), "HUB_API_PORT": str(api_port)}
    supervisor = Supervisor(env=env, log_dir=LOGS / "broker-down")
    api_url = f"http://127.0.0.1:{api_port}"
    try:
        # RabbitMQ "down": nothing listens where this API and relay look for it.
        api = supervisor.hub("api-broker-down", "api")
        supervisor.hub("relay-broker-down", "relay")
        # /healthz would wait for RabbitMQ; this answers 401 at once once the API serves
        supervisor.wait_until(api, lambda: _answers(f"{api_url}/orders/none"), timeout=60)
        assert "RabbitMQ is not reachable" in api.log_tail(200)
        assert "listening on" in api.log_tail(200)

        reply = requests.post(
            f"{api_url}/orders", json=order_payload(), headers=stack.headers, timeout=30
        )
        assert reply.status_code == 202, reply.text
        order_id = reply.json()["order_id"]
        assert support.statuses([order_id]) == {order_id: "received"}

        gate.open()  # RabbitMQ back: the relay publishes, the stack's workers run the chain
        wait_completed([order_id], timeout=120)
    finally:
        supervisor.stop()
        gate.close()


def test_two_make_worker_on_one_host_both_serve(stack: Stack) -> None:
    supervisor = Supervisor(env={}, log_dir=LOGS / "make-worker")
    try:
        first = supervisor.start("make-worker-1", ["make", "--no-print-directory", "worker"])
        second = supervisor.start("make-worker-2", ["make", "--no-print-directory", "worker"])
        for child in (first, second):
            supervisor.wait_for_log(child, "ready.", timeout=90)
        app = bootstrap.create_celery_app(get_settings())
        replies = app.control.ping(timeout=5)
        names = {name for reply in replies for name in reply}
        started = {n for n in names if n.startswith("worker-")}
        assert len(started) == 2, names
        for child in (first, second):
            assert child.popen.poll() is None, child.log_tail()
            assert "ResourceLocked" not in child.log_tail(200)
    finally:
        supervisor.stop()


def test_the_demo_refuses_to_post_into_a_hub_whose_workers_it_did_not_start(
    stack: Stack,
) -> None:
    settings = get_settings()
    database = make_url(settings.database_url)
    demo_port = ports.port("first_day_demo")
    env = {
        **os.environ,
        # The stack's own queue prefix: the stack's workers already consume these queues.
        "HUB_QUEUE_PREFIX": settings.queue_prefix,
        "HUB_DATABASE_URL": database.set(database=f"{database.database}_demo").render_as_string(
            hide_password=False
        ),
        "HUB_API_PORT": str(demo_port),
        "HUB_ERP_URL": f"http://127.0.0.1:{demo_port + 1}",
        "HUB_WAREHOUSE_URL": f"http://127.0.0.1:{demo_port + 2}",
        "HUB_ACCOUNTING_URL": f"http://127.0.0.1:{demo_port + 3}",
    }
    ran = subprocess.run(
        # --here: on these settings as they are, not on the demo's own place beside them.
        [sys.executable, "-m", "hub", "demo", "--orders", "3", "--here"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    said = " ".join((ran.stdout + ran.stderr).split())

    assert ran.returncode == 4, said
    assert "consumers it did not start" in said and f"{settings.queue_prefix}.inventory" in said
    assert "nothing was posted" in said
    assert "Traceback" not in said
