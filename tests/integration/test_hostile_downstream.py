"""A hostile or broken downstream, on the real sandbox, PostgreSQL and the CLI (issue: a body
with ``[/x]`` broke every failures command, a long code or id crashed the step and lost its
message, a dripping reply held a worker, a 200 MB error body took a worker to 576 MB).

Each attack is refused, escaped or survived, with nothing lost: the order ends failed with an
open failure saying why, and the operator's commands print the downstream's words as data."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
import requests
from sqlalchemy import select
from typer.testing import CliRunner

from adapters.erp import ErpClient
from hub import bootstrap
from hub.core import registry
from hub.core.errors import PermanentError, TransientError
from hub.core.ports.downstream import Line, Order
from hub.core.schemas import OrderIn
from hub.core.statuses import OrderStatus
from hub.core.steps import Outcome, Started, StepCall
from hub.db.breaker_gate import SqlBreakerGate
from hub.db.engine import get_engine, unit_of_work
from hub.db.failures import SqlStepRecorder
from hub.db.models import Failure, StepOutcome
from hub.db.models import Order as OrderRow
from hub.entrypoints.cli import support as cli_support
from hub.entrypoints.cli.main import cli
from hub.services.intake import accept
from hub.services.run_step import Done, GiveUp, StepPorts, run_step
from hub.settings import get_settings
from sandbox import DEFAULT_TOKENS, Sandbox
from tests.factories import order_payload

# What a hostile downstream says: rich markup (broken and well-formed), a screen clear, a NUL,
# a right-to-left override, and a code far over the 64 characters a failure record keeps.
HOSTILE_DETAIL = "\u001b[2J\u202eexe [/x] [link=http://e.x]c[/link] [conceal]h[/conceal] nul\u0000!"
HOSTILE_CODE = "[/x]" + "c" * 96


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    running = Sandbox.start(host="127.0.0.1")
    try:
        yield running
    finally:
        running.stop()


def erp(sandbox: Sandbox, **options: Any) -> ErpClient:
    return ErpClient(base_url=sandbox.erp_url, token=DEFAULT_TOKENS["erp"], **options)


def ports(call: StepCall) -> StepPorts:
    settings = get_settings()
    return StepPorts(
        store=bootstrap.step_store(settings),
        calls={"inventory": call},
        breaker=SqlBreakerGate(settings.breaker, get_engine()),
        recorder=SqlStepRecorder(),
        retry_policy=settings.retry_policy,
    )


def new_order() -> uuid.UUID:
    payload = OrderIn.model_validate(order_payload())
    return accept(payload, idempotency_key=None, sender="tests").order_id


def failure_of(order_id: uuid.UUID) -> Failure:
    with unit_of_work() as session:
        row = session.scalars(select(Failure).where(Failure.order_id == order_id)).one()
        session.expunge(row)
        return row


def order_status(order_id: uuid.UUID) -> str:
    with unit_of_work() as session:
        row = session.get(OrderRow, order_id)
        assert row is not None
        return row.status


def cli_run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), terminal_width=400)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_markup_escapes_nul_and_a_long_code_are_stored_and_printed_as_data(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wide enough that no cell folds: the output is compared as printed.
    monkeypatch.setattr(cli_support.out, "width", 1000)
    sandbox.control("erp").set_faults(
        fail_next=1, status=409, code=HOSTILE_CODE, detail=HOSTILE_DETAIL
    )
    order_id = new_order()

    decision = run_step(
        order_id, "inventory", ports=ports(functools.partial(registry.reserve, erp(sandbox)))
    )

    assert isinstance(decision, GiveUp)  # a permanent failure, not a crash
    assert order_status(order_id) == OrderStatus.FAILED
    failure = failure_of(order_id)
    assert failure.error_code is not None and len(failure.error_code) == 64
    assert failure.error_code.startswith("[/x]ccc") and failure.error_code.endswith("…")
    assert "\x00" not in failure.message and "nul!" in failure.message
    assert "\x1b[2J" in failure.message  # kept as the downstream said it, shown escaped below

    commands = {
        "failures list": ("failures", "list"),
        "failures groups": ("failures", "groups"),
        "failures show": ("failures", "show", str(failure.id)),
        "timeline": ("timeline", str(order_id)),
        "replay --all --dry-run": ("replay", "--all", "--dry-run"),
    }
    for name, args in commands.items():
        code, output = cli_run(*args)
        assert code == 0, f"{name}: exit {code}\n{output}"
        assert "\x1b" not in output and "\u202e" not in output, name
        if name != "timeline":  # the timeline's detail names the failure, not its message
            assert "[/x]" in output, f"{name} lost the literal markup:\n{output}"
            assert "\\x1b[2J\\u202eexe" in output, name
            assert "[link=http://e.x]c[/link] [conceal]h" in output, name


def test_a_reply_with_an_id_the_hub_cannot_keep_is_a_permanent_failure_saying_why(
    sandbox: Sandbox,
) -> None:
    client = erp(sandbox)

    def long_id(started: Started, key: str) -> Outcome:
        made = registry.reserve(client, started, key)  # the effect is applied downstream
        return Outcome(made.downstream_id * 20, made.result)

    order_id = new_order()
    decision = run_step(order_id, "inventory", ports=ports(long_id))

    assert isinstance(decision, GiveUp)
    failure = failure_of(order_id)
    assert (failure.error_kind, failure.error_code) == ("permanent", "unrecordable_reply")
    assert "more than the 128 the hub keeps" in failure.message
    assert order_status(order_id) == OrderStatus.FAILED


def test_a_reply_postgresql_refuses_is_a_permanent_failure_not_a_crash() -> None:
    def not_json(started: Started, key: str) -> Outcome:
        # NaN is no JSON value: jsonb refuses it with a DataError.
        return Outcome("R-1", {"weight": float("nan")})

    order_id = new_order()
    decision = run_step(order_id, "inventory", ports=ports(not_json))

    assert isinstance(decision, GiveUp)
    failure = failure_of(order_id)
    assert failure.error_code == "unrecordable_reply"
    assert failure.message.startswith("the reply could not be recorded: ")


def test_nul_in_a_reply_is_removed_and_the_step_succeeds() -> None:
    def with_nul(started: Started, key: str) -> Outcome:
        return Outcome("R-1", {"reservation_id": "R-1", "note\x00": "a\x00b"})

    order_id = new_order()
    assert isinstance(run_step(order_id, "inventory", ports=ports(with_nul)), Done)
    with unit_of_work() as session:
        outcome = session.get(StepOutcome, (order_id, "inventory"))
        assert outcome is not None and outcome.result == {"reservation_id": "R-1", "note": "ab"}


def a_reservation(order_id: uuid.UUID) -> Order:
    return Order(
        id=order_id,
        customer={"id": "C-1", "name": "Ada", "email": "ada@example.com"},
        ship_to={"name": "Ada", "line1": "1 St", "city": "U", "postal_code": "1", "country": "NL"},
        currency="EUR",
        lines=(Line("SKU-001", 1, "1.00"),),
    )


def test_a_dripping_reply_ends_at_the_calls_deadline_and_the_retry_goes_through(
    sandbox: Sandbox,
) -> None:
    # One byte every 0.2 s stays inside each read's 1 s timeout: only a deadline for the whole
    # call (1 + 1 s) ends it; the ~50-byte body would otherwise take ten seconds.
    sandbox.control("erp").set_faults(fail_next=1, status=503, body="drip", drip_ms=200)
    client = erp(sandbox, connect_timeout=1.0, read_timeout=1.0)
    order = a_reservation(uuid.uuid4())

    with pytest.raises(TransientError, match=r"no whole answer within 2 s"):
        client.reserve(order, f"{order.id}:inventory")

    reservation = client.reserve(order, f"{order.id}:inventory")  # nothing lost: it retries
    effects = [
        e
        for e in sandbox.control("erp").ledger()["effects"]
        if e["idempotency_key"] == f"{order.id}:inventory"
    ]
    assert len(effects) == 1 and reservation.id


def test_a_200_mb_error_body_is_read_only_as_far_as_the_cap(sandbox: Sandbox) -> None:
    sandbox.control("erp").set_faults(fail_next=1, status=503, body="huge", huge_bytes=200 << 20)
    client = erp(sandbox)
    order = a_reservation(uuid.uuid4())
    before = psutil.Process().memory_info().rss

    with pytest.raises(TransientError) as raised:
        client.reserve(order, f"{order.id}:inventory")

    # The start of the body was enough to classify it; the rest was never read.
    assert raised.value.code == "fault_injected" and raised.value.status == 503
    grown = psutil.Process().memory_info().rss - before
    assert grown < 50 << 20, f"the client grew by {grown >> 20} MiB reading a capped answer"
    assert client.reserve(order, f"{order.id}:inventory").id  # and the retry goes through


def test_a_2xx_over_the_cap_is_a_permanent_failure_naming_the_cap(sandbox: Sandbox) -> None:
    client = erp(sandbox, max_response_bytes=16)
    order = a_reservation(uuid.uuid4())

    with pytest.raises(PermanentError, match="answer over 16 bytes, not read") as raised:
        client.reserve(order, f"{order.id}:inventory")
    assert raised.value.code == "response_too_large"


def test_a_drip_or_huge_fault_is_refused_with_bad_values(sandbox: Sandbox) -> None:
    control = sandbox.control("erp")
    for bad in ({"drip_ms": 0}, {"huge_bytes": -1}, {"code": 5}, {"detail": "x" * 10_001}):
        with pytest.raises(requests.HTTPError, match="422"):
            control.set_faults(**bad)


def test_an_operator_name_the_record_cannot_hold_is_refused_not_a_crash() -> None:
    code, output = cli_run("replay", "--all", "--dry-run", "--operator", "x" * 129)
    assert code == 2 and "1 to 128 characters" in output
