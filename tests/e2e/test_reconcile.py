"""``hub reconcile`` as an operator runs it: it tells the truth and says what it could not check.

Once it called every order a disagreement after the sandbox restarted (its ledgers are in
memory), flagged every discarded failure as unsettled (so the 3 a.m. runbook's last step,
discard then reconcile, could never come out clean), refused external ids, and made a ledger it
could not read the same exit code as a bad option.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from hub.db.engine import unit_of_work
from hub.services.replay import discard_one
from tests import ports, support
from tests.e2e.conftest import Stack
from tests.e2e.test_failures import events, hub, post_one, wait_failed
from tests.e2e.test_flow import wait_completed
from tests.factories import order_payload


def restart_sandbox(stack: Stack) -> None:
    """Stop the stack's sandbox process and start a new one: its ledgers begin again, empty."""
    supervisor = stack.supervisor
    old = next(c for c in supervisor.children if c.name == "sandbox")
    os.killpg(old.popen.pid, signal.SIGTERM)
    old.popen.wait(30)
    supervisor.children.remove(old)
    stack.start_sandbox(timeout=60)  # ready once every system of the pipeline answers


def said(ran: subprocess.CompletedProcess[str]) -> str:
    """What a command printed, on one line, without the boxes rich draws around an error."""
    text = (ran.stdout + ran.stderr).translate({ord(c): " " for c in "│╭╮╰╯─"})
    return " ".join(text.split())


def test_after_a_sandbox_restart_reconcile_says_what_it_could_not_check(stack: Stack) -> None:
    before = order_payload()
    first = post_one(stack, external_id=before["external_id"])
    wait_completed([first], timeout=90)

    restart_sandbox(stack)
    second = post_one(stack)
    wait_completed([second], timeout=90)

    # The order done before the restart, by its external id, as hub timeline takes it.
    ran = hub("reconcile", "--order", before["external_id"], "--order", second)
    assert ran.returncode == 0, said(ran)
    assert "missing_effect" not in said(ran)
    for step in ("inventory", "fulfillment", "invoice"):
        assert f"not checked: 1 {step} step(s) succeeded before that system's sandbox" in said(ran)
    assert "a restart forgets what it applied before" in said(ran)
    assert "agree for everything it could check: 2 orders" in said(ran)

    # The order done after the restart is checked in full: no excuse for it.
    ran = hub("reconcile", "--order", second)
    assert ran.returncode == 0, said(ran)
    assert "not checked" not in said(ran)


def test_discard_then_reconcile_at_rest_comes_out_clean(stack: Stack) -> None:
    stack.sandbox.set_stock({"SKU-018": 0})
    try:
        payload = order_payload(lines=[{"sku": "SKU-018", "qty": 1, "unit_price": "3.00"}])
        order_id = post_one(stack, external_id=payload["external_id"], lines=payload["lines"])
        failure = wait_failed(order_id)
        support.wait_for(
            lambda: bool(events(stack, order_id, "step.dead_lettered")),
            timeout=30,
            what="the rejected message to reach the failure queue and be recorded",
        )
        ran = hub("reconcile", "--at-rest", "--order", payload["external_id"])
        assert ran.returncode == 0, said(ran)  # waiting for a decision is at rest, too
        assert "1 waiting for a decision" in said(ran)

        # The runbook's discard (which cancels the order: nothing of it was done downstream).
        discarded = hub("discard", str(failure["id"]), "--reason", "the CRM cancelled it")
        assert discarded.returncode == 0, said(discarded)
        support.wait_for(
            lambda: support.statuses([order_id]) == {order_id: "cancelled"},
            timeout=60,
            what="the discarded order to be cancelled",
        )

        # The runbook's last step; --settled is the old name of --at-rest.
        for option in ("--at-rest", "--settled"):
            ran = hub("reconcile", option, "--order", payload["external_id"])
            assert ran.returncode == 0, said(ran)
            assert "unsettled" not in said(ran)
            assert "1 cancelled" in said(ran) and "0 waiting for a decision" in said(ran)

        # Discarding without cancelling: the failure closes as discarded, the order stays failed.
        second = post_one(stack, lines=payload["lines"])
        kept = wait_failed(second)
        support.wait_for(  # else the dead letter, arriving after, would be recorded anew
            lambda: bool(events(stack, second, "step.dead_lettered")),
            timeout=30,
            what="the rejected message to reach the failure queue and be recorded",
        )
        with unit_of_work() as session:
            discard_one(session, kept["id"], operator="ops", reason="duplicate of another order")
        ran = hub("reconcile", "--at-rest", "--order", second)
        assert ran.returncode == 0, said(ran)
        assert "1 failed and discarded" in said(ran)
    finally:
        stack.sandbox.set_stock({"SKU-018": 1_000_000})


def test_an_unknown_order_is_refused_naming_it() -> None:
    ran = hub("reconcile", "--order", "CRM-no-such-order")
    assert ran.returncode == 2, said(ran)
    assert "no order has id or external id 'CRM-no-such-order'" in said(ran)


def test_a_ledger_that_cannot_be_read_is_exit_3_naming_the_system(stack: Stack) -> None:
    nowhere = f"http://127.0.0.1:{ports.port('nowhere')}"  # nothing listens there
    ran = subprocess.run(
        [sys.executable, "-m", "hub", "reconcile"],
        env={**os.environ, "HUB_ERP_URL": nowhere},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 3, said(ran)
    assert f"cannot read the erp ledger at {nowhere}/_ledger" in said(ran)
    assert "Traceback" not in said(ran)
