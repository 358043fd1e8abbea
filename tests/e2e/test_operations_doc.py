"""docs/operations.md's code blocks, run as written on the e2e stack, so the page cannot drift.

Every ``sh`` block is read from the page itself, in order, and each has a runner here: a block
the page gains without one fails the test until it is given one. What a runner changes in a
command is only what the page leaves to the reader (an order's or group's id, the key printed
a line before) and the ports (the stack's own are taken); the rest runs as printed, through
bash, with ``.venv/bin`` on PATH as after ``make venv``. The logs one-liner is run over real
logs by tests/e2e/test_logs_oneliner.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from hub.db.engine import unit_of_work
from hub.demo.processes import ROOT, Supervisor
from hub.services.failure_groups import open_groups
from tests import ports
from tests.e2e.conftest import LOGS, Stack
from tests.e2e.test_operator_pages import failed, store_order

PAGE = ROOT / "docs/operations.md"
BIN = str(Path(sys.executable).parent)
PATH = f"{BIN}:{os.environ['PATH']}"
# A long-running command of the page, and the line its log shows once it serves.
READY = {
    "make sandbox": "listening on",
    "make worker": "ready.",
    "make relay": "relay running",
    "make api": "listening on",
    "make flower": "Visit me at",
}


def sh_blocks() -> list[tuple[str, str]]:
    """(section heading, block text) of every ``sh`` block, in page order."""
    found = []
    for section in re.split(r"\n(?=## )", PAGE.read_text()):
        heading = section.splitlines()[0].lstrip("# ").strip()
        found += [(heading, block) for block in re.findall(r"```sh\n(.*?)```", section, re.S)]
    return found


def commands(block: str) -> list[str]:
    """The block's commands, one a line (a quoted body over several lines kept whole), without
    comments and blank lines."""
    found, pending = [], ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending = f"{pending}\n{line}" if pending else line
        for comment in re.finditer(r"\s+#", pending):  # a comment starts outside quotes
            if pending[: comment.start()].count("'") % 2 == 0:
                pending = pending[: comment.start()]
                break
        if pending.count("'") % 2 == 0:
            found.append(pending)
            pending = ""
    return found


def run(command: str, *, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    ran = subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env={**os.environ, "PATH": PATH, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        start_new_session=True,  # no terminal: getpass reads the answers from stdin
    )
    assert ran.returncode == 0, f"{command}\nexit {ran.returncode}\n{ran.stdout}\n{ran.stderr}"
    return ran.stdout


def elsewhere() -> dict[str, str]:
    """Ports of this test's own for the parts the stack already serves on its ports."""
    port = ports.port
    return {
        "PATH": PATH,
        "HUB_ERP_URL": f"http://127.0.0.1:{port('operations_doc', 0)}",
        "HUB_WAREHOUSE_URL": f"http://127.0.0.1:{port('operations_doc', 1)}",
        "HUB_ACCOUNTING_URL": f"http://127.0.0.1:{port('operations_doc', 2)}",
        "HUB_API_PORT": str(port("operations_doc", 3)),
        "HUB_FLOWER_PORT": str(port("operations_doc", 5)),
    }


def start_each(commands_: list[str], name: str) -> None:
    """Start each long-running command, wait until it serves, stop them all."""
    supervisor = Supervisor(env=elsewhere(), log_dir=LOGS / "operations-doc")
    try:
        for n, command in enumerate(commands_):
            child = supervisor.start(f"{name}-{n}", ["bash", "-c", command])
            target = next(t for t in READY if t in command)
            supervisor.wait_for_log(child, READY[target], timeout=120)
    finally:
        supervisor.stop()


def by_hand(stack: Stack, block: str) -> None:
    lines = commands(block)
    assert lines[0] == "make migrate"
    run(lines[0])
    start_each(lines[1:], "by-hand")


def send_an_order(stack: Stack, block: str) -> None:
    create, post = commands(block)
    printed = run(create)
    key = re.search(r"API key:\s+(\S+)", printed)
    assert key, printed
    here = post.replace("localhost:8000", stack.api_url.removeprefix("http://"))
    external = f"CRM-{uuid.uuid4().hex[:8]}"  # the page's CRM-1001, once per run of the suite
    here = here.replace("CRM-1001", external)
    first = json.loads(run(here, env={"KEY": key.group(1)}))
    again = json.loads(run(here, env={"KEY": key.group(1)}))
    assert first["status"] == "received" and again["order_id"] == first["order_id"]


def failure_groups(stack: Stack, block: str) -> None:
    stack.sandbox.set_stock({"SKU-017": 0})
    try:
        short = failed([store_order("SKU-017") for _ in range(2)])
        unknown = failed([store_order(f"ZZ-{uuid.uuid4().hex[:6]}") for _ in range(2)])
        with unit_of_work() as session:
            groups = {g.key.fingerprint: g.group_id for g in open_groups(session)}
        stock = groups["<id>: # wanted, # available"]
        skus = groups["unknown sku <id>"]
        lines = [
            line.replace("399a92f0fef7", stock).replace("70d777149906", skus)
            for line in commands(block)
        ]
        run(lines[0])  # groups
        listed = run(lines[1])  # one group's failures
        assert all(str(f.order_id) in listed for f in short), listed
        run(lines[2])  # dry run
        stack.sandbox.set_stock({"SKU-017": 1_000_000})
        run(lines[3])  # the replay, after the restock ("stock arrived")
        run(lines[4])  # the unknown skus given up on
        assert unknown
    finally:
        stack.sandbox.set_stock({"SKU-017": 1_000_000})


def failures_page_login(stack: Stack, block: str) -> None:
    add, serve = commands(block)
    name = f"ada{uuid.uuid4().hex[:6]}"  # ada, once per run of the suite
    run(add.replace(" ada", f" {name}"), stdin="a long secret for ada\n" * 2)
    start_each([serve], "failures-page")


def flower(stack: Stack, block: str) -> None:
    serve, ask = commands(block)
    supervisor = Supervisor(env=elsewhere(), log_dir=LOGS / "operations-doc")
    try:
        child = supervisor.start("flower", ["bash", "-c", serve])
        supervisor.wait_for_log(child, READY["make flower"], timeout=120)
        run(ask.replace("localhost:5555", f"127.0.0.1:{elsewhere()['HUB_FLOWER_PORT']}"))
    finally:
        supervisor.stop()


RUNNERS = {
    "Running the real stack by hand": [by_hand, send_an_order],
    "Failure groups": [failure_groups],
    "The failures page": [failures_page_login],
    "Flower": [flower],
    "Logs": [],  # tests/e2e/test_logs_oneliner.py
}


def test_every_code_block_of_the_operations_page_runs_as_written(stack: Stack) -> None:
    blocks = sh_blocks()
    by_section: dict[str, list[str]] = {}
    for heading, block in blocks:
        by_section.setdefault(heading, []).append(block)
    unhandled = {h: len(b) for h, b in by_section.items() if len(RUNNERS.get(h, [])) < len(b)}
    unhandled.pop("Logs", None)
    assert not unhandled, f"code blocks of docs/operations.md no test runs: {unhandled}"
    for heading, section_blocks in by_section.items():
        for runner, block in zip(RUNNERS[heading], section_blocks, strict=False):
            runner(stack, block)
