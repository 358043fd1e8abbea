"""The logs one-liner of docs/operations.md, as written, over real logs of every process.

Once ``jq`` aborted on the worker's plain ``worker: Warm shutdown (MainProcess)`` line (Celery
writes it past logging) and on the sandbox's plain ``listening on`` lines.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from pathlib import Path

from hub.demo.processes import ROOT, Supervisor
from hub.settings import get_settings
from tests.e2e.conftest import LOGS, Stack
from tests.e2e.test_flow import post_orders, wait_completed

DOCS = ROOT / "docs/operations.md"


def documented_one_liner() -> str:
    """The ``jq`` command in the "Logs" section's code block, exactly as the page has it."""
    section = DOCS.read_text().split("\n## Logs\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    [command] = [line for block in blocks for line in block.splitlines() if line.startswith("jq ")]
    return command


def test_the_documented_logs_one_liner_reads_every_process_log(
    stack: Stack, tmp_path: Path
) -> None:
    node = f"{get_settings().queue_prefix}-oneliner"
    supervisor = Supervisor(env={}, log_dir=LOGS / "oneliner")
    # Logs are appended to: this run's worker starts on an empty one.
    (LOGS / "oneliner" / "oneliner-worker.log").unlink(missing_ok=True)
    worker = supervisor.worker("oneliner-worker", node=node)
    try:
        supervisor.wait_for_log(worker, "ready.", timeout=90)
        order_ids = post_orders(stack, 6)
        wait_completed(order_ids, timeout=120)
        # A warm shutdown, as Ctrl-C or a deploy gives it: Celery's own notice lands in the log.
        worker.popen.send_signal(signal.SIGTERM)
        worker.popen.wait(60)
        supervisor.children.clear()
    finally:
        # A failure above must not leave a third worker on the stack's queues for the tests
        # after this one (a worker outside their settings, e.g. without their limits).
        supervisor.stop()
    assert "Warm shutdown" in worker.log_path.read_text()

    # What `make demo` leaves in var/demo/: one log per process, the sandbox's among them.
    demo = tmp_path / "var" / "demo"
    demo.mkdir(parents=True)
    for name in ("sandbox", "api", "relay", "worker1", "worker2"):
        shutil.copy(LOGS / f"{name}.log", demo / f"{name}.log")
    shutil.copy(worker.log_path, demo / "worker3.log")

    command = documented_one_liner().replace("<id>", order_ids[0])
    ran = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )

    assert ran.returncode == 0, f"{command}\nexit {ran.returncode}: {ran.stderr}"
    rows = [json.loads(line) for line in ran.stdout.splitlines()]
    processes = {row[1] for row in rows}
    assert {"api", "worker"} <= processes, rows
    assert {row[2] for row in rows if row[1] == "worker"} >= set(get_settings().pipeline.steps)
    # Every line of every log is JSON: jq over all of them reads each one.
    everything = subprocess.run(
        ["bash", "-c", "jq -c .event var/demo/*.log"], cwd=tmp_path, capture_output=True, text=True
    )
    assert everything.returncode == 0, everything.stderr
    assert "Warm shutdown (MainProcess)" in everything.stdout
    assert "sandbox erp listening on" in everything.stdout
