"""Test set-up: a database and queue prefix of the tests' own; real services or a loud failure.

The environment is set before any hub module reads its settings, so the worker processes the
tests start (which inherit it) and the code under test agree on every address.
"""

from __future__ import annotations

import os

# Several test runs may share one machine (a second checkout, a colleague's run): each can pick
# its own database, queue prefix and ports with these variables.
PORT_BASE = int(os.environ.get("HUB_TEST_PORT_BASE", "18100"))

TEST_ENV = {
    "HUB_DATABASE_URL": os.environ.get(
        "HUB_TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/hub_test"
    ),
    "HUB_BROKER_URL": os.environ.get("HUB_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    "HUB_QUEUE_PREFIX": os.environ.get("HUB_TEST_QUEUE_PREFIX", "hubtest"),
    "HUB_ERP_URL": f"http://127.0.0.1:{PORT_BASE + 1}",
    "HUB_WAREHOUSE_URL": f"http://127.0.0.1:{PORT_BASE + 2}",
    "HUB_ACCOUNTING_URL": f"http://127.0.0.1:{PORT_BASE + 3}",
    "HUB_ERP_TOKEN": "test-erp-token-5b1f",
    "HUB_WAREHOUSE_TOKEN": "test-warehouse-token-77c2",
    "HUB_ACCOUNTING_TOKEN": "test-accounting-token-a9e0",
    "HUB_API_PORT": str(PORT_BASE),
    # One API process: the tests start and stop the API often, and one starts fastest.
    "HUB_API_PROCESSES": os.environ.get("HUB_TEST_API_PROCESSES", "1"),
    "HUB_RETRY__BASE_DELAY": "1",
    "HUB_RETRY__MAX_DELAY": "4",
    # Enough attempts that a system failing 40 % of its calls at random does not exhaust an
    # order's retries by chance (0.4^6 is 0.4 %: one order of 200 now and then; 0.4^12 is
    # 0.002 %), nor do the probes of a 30 s outage.
    "HUB_RETRY__MAX_ATTEMPTS": "12",
    "HUB_BREAKER__MIN_CALLS": "5",
    "HUB_BREAKER__COOLDOWN": "4",
    "HUB_BREAKER__PROBE_LEASE": "10",
    "HUB_RELAY_INTERVAL": "0.2",
    "HUB_OPERATOR_USER": "test-operator",
    "HUB_OPERATOR_PASSWORD": "test-operator-password-3c9d",
}
os.environ.update(TEST_ENV)
