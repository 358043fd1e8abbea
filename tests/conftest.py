"""Test set-up: a database and queue prefix of the tests' own; real services or a loud failure.

The environment is set before any hub module reads its settings, so the worker processes the
tests start (which inherit it) and the code under test agree on every address.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, make_url

from tests import ports

# Several test runs may share one machine (a second checkout, a colleague's run): each can pick
# its own database, queue prefix and ports with these variables (every port: tests/ports.py).
PORT_BASE = ports.PORT_BASE

TEST_ENV = {
    "HUB_DATABASE_URL": os.environ.get(
        "HUB_TEST_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/hub_test"
    ),
    "HUB_BROKER_URL": os.environ.get("HUB_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    "HUB_QUEUE_PREFIX": os.environ.get("HUB_TEST_QUEUE_PREFIX", "hubtest"),
    "HUB_ERP_URL": f"http://127.0.0.1:{PORT_BASE + 1}",
    "HUB_WAREHOUSE_URL": f"http://127.0.0.1:{PORT_BASE + 2}",
    "HUB_ACCOUNTING_URL": f"http://127.0.0.1:{PORT_BASE + 3}",
    # The notify step's SMTP sandbox, where a test turns the step on (its /_ endpoints next).
    "HUB_SMTP_URL": f"smtp://127.0.0.1:{ports.port('smtp')}",
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
    # Tests that try a wrong password then another on purpose are not slowed down (the lock
    # after 10 in a row stays); tests/integration/test_operator_accounts.py sets its own.
    "HUB_LOGIN__BACKOFF": "0",
    # Tests read /metrics right after what they count; test_public_surfaces.py sets an age.
    "HUB_SNAPSHOT_MAX_AGE": "0",
    "HUB_METRICS_MAX_PER_SECOND": "1000",
    # The fuzz test reads the OpenAPI document the app serves.
    "HUB_API_DOCS": "true",
}
# Tryton's databases (tests/tryton) on the tests' own PostgreSQL server, not the machine's.
_TEST_DB = make_url(TEST_ENV["HUB_DATABASE_URL"])
TEST_ENV["HUB_TRYTON_POSTGRES"] = URL.create(
    "postgresql", _TEST_DB.username, _TEST_DB.password, _TEST_DB.host, _TEST_DB.port
).render_as_string(hide_password=False)
os.environ.update(TEST_ENV)


# The tier of each folder of tests/, as markers: `pytest -m "not e2e"`, `pytest -m unit`.
TIERS = {
    "unit": ("unit",),
    "integration": ("integration",),
    "e2e": ("e2e",),
    "e2e_pipeline": ("e2e",),
    "e2e_trial": ("e2e",),
    "tryton": ("integration", "tryton"),
}
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            folder = item.path.resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue  # a test file given from outside tests/ (a bench check, say)
        if folder not in TIERS:
            raise pytest.UsageError(
                f"{item.nodeid}: a test outside the tiers' folders ({', '.join(TIERS)})"
            )
        for marker in TIERS[folder]:
            item.add_marker(marker)


def pytest_configure(config: pytest.Config) -> None:
    clash = ports.ephemeral_clash()
    if clash:
        raise pytest.UsageError(clash)


CLEAN_UP_SAID = pytest.StashKey[str]()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Delete the queues and exchanges the suite declared (tests/broker_cleanup.py says why)."""
    from tests import broker_cleanup, support  # after the environment above is set

    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller cleans once every worker is done
    xdist = session.config.getoption("dist", default="no") != "no"
    if not (support.USED_SERVICES or xdist):
        return  # a unit-only run never touched the broker
    prefix = TEST_ENV["HUB_QUEUE_PREFIX"]
    try:
        said = broker_cleanup.clean(TEST_ENV["HUB_BROKER_URL"], prefix).summary()
    except Exception as exc:  # the run's verdict stands; say loudly what was left behind
        said = f"broker clean-up failed, the queues of {prefix} are left behind: {exc}"
    session.config.stash[CLEAN_UP_SAID] = said


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    said = config.stash.get(CLEAN_UP_SAID, "")
    if said:
        terminalreporter.write_line(said)
