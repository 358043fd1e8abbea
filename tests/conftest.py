"""Shared test set-up: a database and queue prefix of the tests' own, real services or a loud failure.

The environment is set before any hub module reads its settings, so the worker processes the
tests start (which inherit it) and the code under test agree on every address.
"""

from __future__ import annotations

import os

TEST_ENV = {
    "HUB_DATABASE_URL": os.environ.get(
        "HUB_TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/hub_test"
    ),
    "HUB_BROKER_URL": os.environ.get("HUB_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    "HUB_QUEUE_PREFIX": "hubtest",
    "HUB_ERP_URL": "http://127.0.0.1:18101",
    "HUB_WAREHOUSE_URL": "http://127.0.0.1:18102",
    "HUB_ACCOUNTING_URL": "http://127.0.0.1:18103",
    "HUB_ERP_TOKEN": "test-erp-token-5b1f",
    "HUB_WAREHOUSE_TOKEN": "test-warehouse-token-77c2",
    "HUB_ACCOUNTING_TOKEN": "test-accounting-token-a9e0",
    "HUB_API_PORT": "18000",
    "HUB_RETRY__BASE_DELAY": "1",
    "HUB_RETRY__MAX_DELAY": "4",
    "HUB_RETRY__MAX_ATTEMPTS": "4",
    "HUB_RELAY_INTERVAL": "0.2",
}
os.environ.update(TEST_ENV)


