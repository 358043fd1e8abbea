"""Never a silent fallback: every command uses exactly the configured services and, when one
does not answer, stops with a message naming it and where it looked (no stack trace).

Both URLs point at a port where nothing listens, and so do the addresses trial mode probes:
even then no command but ``hub demo`` considers trial mode, and the demo does not either,
since URLs are configured.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from hub.demo.processes import ROOT

NOWHERE = "127.0.0.1:1"
UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"
PG, RABBIT = "PostgreSQL", "RabbitMQ"


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    needs: tuple[str, ...]

    @property
    def name(self) -> str:
        return " ".join(self.argv)


def hub(*args: str, needs: tuple[str, ...] = (PG, RABBIT)) -> Case:
    return Case((sys.executable, "-m", "hub", *args), needs)


def make(target: str) -> Case:
    # -o venv: the target as the Makefile runs it, without (re)building the virtualenv.
    return Case(("make", "-s", "-o", "venv", target), (PG, RABBIT))


CASES = [
    hub("check"),
    hub("worker"),
    hub("relay"),
    hub("api"),
    hub("demo", "--orders", "1"),
    hub("status"),
    hub("replay", "--all"),
    hub("replay", "--all", "--dry-run", needs=(PG,)),
    hub("failures", "list", needs=(PG,)),
    hub("failures", "show", UNKNOWN_ID, needs=(PG,)),
    hub("discard", UNKNOWN_ID, "--reason", "test", needs=(PG,)),
    hub("breakers", needs=(PG,)),
    hub("timeline", "CRM-1", needs=(PG,)),
    hub("migrate", needs=(PG,)),
    hub("keys", "create", "crm", needs=(PG,)),
    hub("keys", "list", needs=(PG,)),
    hub("keys", "revoke", "0123456789ab", needs=(PG,)),
    hub("flower", needs=(RABBIT,)),
    make("worker"),
    make("api"),
    make("relay"),
]


def unreachable_env() -> dict[str, str]:
    return {
        **os.environ,
        "HUB_DATABASE_URL": f"postgresql+psycopg2://postgres@{NOWHERE}/hub",
        "HUB_BROKER_URL": f"amqp://guest:guest@{NOWHERE}//",
        "HUB_TRIAL_PROBE_POSTGRES": NOWHERE,
        "HUB_TRIAL_PROBE_RABBITMQ": NOWHERE,
        "HUB_FLOWER_OPEN": "true",
    }


@pytest.fixture(scope="module")
def outcomes() -> dict[str, subprocess.CompletedProcess[str]]:
    """Every command once, a few at a time (each spends a second or two finding nothing)."""
    env = unreachable_env()

    def run(case: Case) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            case.argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
        )

    with ThreadPoolExecutor(4) as pool:
        return dict(zip([c.name for c in CASES], pool.map(run, CASES), strict=True))


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name.split(" -m ")[-1])
def test_a_command_names_the_service_it_cannot_reach(
    outcomes: dict[str, subprocess.CompletedProcess[str]], case: Case
) -> None:
    result = outcomes[case.name]
    said = result.stdout + result.stderr

    assert result.returncode != 0, said
    for service in case.needs:
        assert f"{service} is not reachable at" in said or f"{service} unreachable at" in said, said
    assert NOWHERE in said
    assert "Traceback" not in said and "TRIAL MODE" not in said and "sqlite" not in said


@pytest.mark.parametrize("command", ["worker", "relay", "api", "demo", "check"])
def test_an_embedded_part_outside_trial_mode_is_refused_by_name(command: str) -> None:
    env = {**unreachable_env(), "HUB_BROKER_URL": "filesystem://localhost/"}
    env.pop("HUB_TRIAL", None)

    result = subprocess.run(
        [sys.executable, "-m", "hub", command],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert "HUB_BROKER_URL" in result.stderr and "trial mode only" in result.stderr
    assert "Traceback" not in result.stderr
