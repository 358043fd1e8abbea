"""Records the operator transcript ``docs/erp-outage-session.txt`` on a stack of its own.

``make docs-session`` (about two minutes). Every command shown is run for real and followed by
what it printed; the lines starting with ``###`` are the story, and the rows of status codes
are the CRM's posts. The stack lives apart from everything else (database ``hub_session``,
queue prefix ``hubsession``, ports 18520-18523) with the hub's default settings.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from bench.env import StackPlace

SESSION = StackPlace(database="hub_session", queue_prefix="hubsession", port_base=18520)
ROOT = Path(__file__).resolve().parent.parent
HUB = Path(sys.executable).parent / "hub"
COLUMNS = "170"


class Transcript:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._told = True  # the story goes on: no blank line before its next line

    def say(self, story: str) -> None:
        print(("" if self._told else "\n") + f"### {story}", file=self.out, flush=True)
        self._told = True

    def output(self, text: str) -> None:
        """What happened without a command: the answers to the CRM's posts."""
        print(text, file=self.out, flush=True)
        self._told = False

    def run(self, *argv: str) -> str:
        shown = [_shown(arg) for arg in argv]
        print(f"\n$ {shlex.join(shown)}", file=self.out)
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "COLUMNS": COLUMNS, "NO_COLOR": "1"},
            cwd=ROOT,
        )
        printed = done.stdout + done.stderr
        print(printed.rstrip("\n"), file=self.out, flush=True)
        self._told = False
        return printed

    def hub(self, *args: str) -> str:
        return self.run(str(HUB), *args)

    def post_json(self, url: str, body: dict[str, Any]) -> str:
        return self.run(
            "curl", "-s", "-X", "POST", url,
            "-H", "content-type: application/json", "-d", json.dumps(body),
        )  # fmt: skip

    def faults(self, url: str, faults: dict[str, Any] | None) -> None:
        if faults is None:
            self.run("curl", "-s", "-X", "DELETE", f"{url}/_faults")
        else:
            self.post_json(f"{url}/_faults", faults)

    def stock(self, url: str, levels: dict[str, int]) -> None:
        self.post_json(f"{url}/_stock", levels)


def _shown(arg: str) -> str:
    """The command as an operator types it: the hub from the checkout's virtualenv."""
    return os.path.relpath(arg, ROOT) if arg == str(HUB) else arg


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"session: gave up waiting for {what} after {timeout:.0f}s")
        time.sleep(0.5)


def main() -> int:
    SESSION.apply()  # before anything reads the settings

    import requests

    from bench import records, state
    from bench.auth import sender_headers
    from bench.load import order_payload
    from bench.stack import Stack
    from hub.settings import get_settings

    settings = get_settings()
    state.fresh_database()
    state.purge_queues()
    stack = Stack(settings, ROOT / "var" / "session" / "logs")
    erp = stack.sandbox.urls["erp"]
    log = Transcript(sys.stdout)
    headers = sender_headers("crm")
    posted: list[str] = []

    def post(payloads: list[dict[str, Any]], *, every: float = 0.0) -> None:
        codes = []
        for payload in payloads:
            reply = requests.post(f"{stack.api_url}/orders", json=payload, headers=headers)
            codes.append(str(reply.status_code))
            if reply.status_code == 202:
                posted.append(reply.json()["order_id"])
            time.sleep(every)
        log.output(" ".join(codes))

    def settled() -> bool:
        counts = records.status_counts()
        return counts["received"] + counts["processing"] == 0

    run = str(int(time.time()))
    stack.start()
    try:
        log.say("the ERP sheds load: the first call of every order fails (503, an HTML page,")
        log.say("Retry-After as an HTTP date one second ahead); every second call goes through")
        log.faults(
            erp,
            {"first_call_fails": True, "body": "html", "retry_after": 1, "retry_after_date": True},
        )
        log.say("orders keep arriving from the CRM (intake answers 202 at once)")
        post([order_payload(n, run=f"{run}a") for n in range(20)], every=0.1)
        time.sleep(2)
        log.hub("breakers")
        wait_for(settled, timeout=120, what="the first 20 orders")
        log.say(
            "half the ERP's calls failed and the breaker stayed closed: every order went through"
        )
        log.hub("status")

        log.say("the ERP goes down for maintenance (every call 503)")
        log.faults(erp, {"down": True})
        log.say("orders keep arriving")
        post([order_payload(n, run=f"{run}b") for n in range(20)], every=0.5)
        time.sleep(3)
        log.hub("breakers")
        log.hub("status")
        log.say("nothing failed for good: the steps held back wait in RabbitMQ, no attempt spent")
        log.hub("failures", "list")

        log.say("the ERP is back; the breaker's probes find it, and it closes by itself")
        log.faults(erp, None)
        wait_for(settled, timeout=180, what="the orders held during the outage")
        log.hub("breakers")
        log.hub("status")
        log.hub("failures", "list")
        log.hub("reconcile")

        log.say("Another night: a new range of skus goes live in the CRM before its stock")
        log.say("reaches the ERP")
        new_skus = ["SKU-901", "SKU-902", "SKU-903", "SKU-904"]
        log.stock(erp, {"SKU-901": 0, "SKU-902": 0, "SKU-903": 0, "SKU-904": 1})
        log.say("12 orders for the new skus, 3 for skus the ERP has never heard of (SKU-X01..X03)")
        short = [
            _with_line(order_payload(n, run=f"{run}c"), new_skus[n % 4], 2 + n % 3)
            for n in range(12)
        ]
        unknown = [
            _with_line(order_payload(n, run=f"{run}d"), f"SKU-X0{n + 1}", 1) for n in range(3)
        ]
        post(short + unknown)
        wait_for(settled, timeout=60, what="the refused orders")
        groups = log.hub("failures", "groups")
        short_group, unknown_group = _group_ids(groups, ["wanted", "unknown sku"])
        log.hub("failures", "list", "--group", short_group)
        log.say("the stock arrives")
        log.stock(erp, dict.fromkeys(new_skus, 100))
        log.hub("replay", "--group", short_group, "--dry-run")
        log.hub(
            "replay", "--group", short_group, "--rate", "10", "--operator", "night-ops",
            "--reason", "stock of SKU-901..904 arrived",
        )  # fmt: skip
        log.say("the same command again (a second terminal, or a colleague): nothing twice")
        log.hub("replay", "--group", short_group, "--operator", "night-ops")
        log.say("the unknown skus were a CRM mistake; those orders are void")
        reason = "skus do not exist; CRM fixed"
        log.hub("discard", "--group", unknown_group, "--dry-run", "--reason", reason)
        log.hub("discard", "--group", unknown_group, "--operator", "night-ops", "--reason", reason)
        wait_for(settled, timeout=60, what="the replayed orders")
        log.hub("failures", "groups")
        log.hub("status")
        log.hub("reconcile")
    finally:
        stack.stop()
    return 0


def _with_line(payload: dict[str, Any], sku: str, qty: int) -> dict[str, Any]:
    """The order with one line: ``qty`` of ``sku``."""
    return {**payload, "lines": [{"sku": sku, "qty": qty, "unit_price": "12.50"}]}


def _group_ids(groups_table: str, causes: list[str]) -> list[str]:
    """The group id of the row whose cause mentions each of ``causes``, in that order."""
    ids = []
    for cause in causes:
        rows = [line for line in groups_table.splitlines() if cause in line]
        if not rows:
            raise SystemExit(f"session: no failure group about {cause!r} in:\n{groups_table}")
        ids.append(rows[0].split("│")[1].strip())
    return ids


if __name__ == "__main__":
    sys.exit(main())
