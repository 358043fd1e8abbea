"""The notification step against a real SMTP server on loopback (the aiosmtpd sandbox)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests

from adapters.control import SandboxControl, control_url
from adapters.smtp import SmtpNotifier
from hub import bootstrap
from hub.core.errors import TransientError
from hub.core.ports.downstream import Line, Order
from hub.core.registry import REGISTRY
from hub.core.steps import Started
from hub.settings import load_settings
from sandbox.server import Place, run_sandbox, serve_own
from sandbox.smtp import SmtpSandbox

ORDER = Order(
    id=uuid.UUID(int=7),
    customer={"id": "C-1", "name": "Ada", "email": "ada@example.com"},
    ship_to={},
    currency="EUR",
    lines=(Line("SKU-001", 2, "12.50"),),
)
STARTED = Started(
    order=ORDER,
    attempt=1,
    earlier={"inventory": "rsv_1", "fulfillment": "shp_1", "invoice": "inv_1"},
    results={
        "fulfillment": {"id": "shp_1", "carrier": "PostNL", "tracking_number": "TRK-42"},
        "invoice": {"id": "inv_1", "total": "25.00", "currency": "EUR"},
    },
)


@pytest.fixture
def sandbox() -> Iterator[SmtpSandbox]:
    server = SmtpSandbox().start()
    try:
        yield server
    finally:
        server.stop()


def notifier(sandbox: SmtpSandbox, monkeypatch: pytest.MonkeyPatch) -> SmtpNotifier:
    monkeypatch.setenv("HUB_SMTP_URL", sandbox.url)
    built = bootstrap.adapter(load_settings(), "smtp")
    assert isinstance(built, SmtpNotifier)
    return built


def test_the_step_sends_one_message_however_often_it_runs(
    sandbox: SmtpSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = REGISTRY.step("notify").call
    key = f"{ORDER.id}:notify"
    port = notifier(sandbox, monkeypatch)

    first = call(port, STARTED, key)
    again = call(port, STARTED, key)  # a retry after a lost answer

    ledger = sandbox.ledger.ledger()
    assert ledger["calls"] == 2
    [effect] = ledger["effects"]
    assert first.downstream_id == again.downstream_id == f"<{ORDER.id}.notify@hub>" == effect["id"]
    assert effect["to"] == ["ada@example.com"]
    assert "TRK-42" in effect["body"] and "25.00 EUR" in effect["body"]


def test_a_server_that_is_gone_is_transient_and_counts_against_the_breaker(
    sandbox: SmtpSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = notifier(sandbox, monkeypatch)
    port.check()
    sandbox.stop()

    with pytest.raises(TransientError) as caught:
        REGISTRY.step("notify").call(port, STARTED, f"{ORDER.id}:notify")

    assert caught.value.system_down
    with pytest.raises(TransientError):
        port.check()


def test_the_step_is_off_unless_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "notify" not in load_settings().pipeline.steps

    monkeypatch.setenv("HUB_NOTIFY_ENABLED", "true")

    assert load_settings().pipeline.steps == ("inventory", "fulfillment", "invoice", "notify")


def test_the_sandbox_runner_serves_it_from_its_module_with_the_ledger_at_the_next_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What ``python -m sandbox`` does for a system outside the HTTP contract.
    served = serve_own("smtp", Place("127.0.0.1", 0))
    try:
        monkeypatch.setenv("HUB_SMTP_URL", served.url)
        port = bootstrap.adapter(load_settings(), "smtp")
        REGISTRY.step("notify").call(port, STARTED, f"{ORDER.id}:notify")
        reader = SandboxControl(control_url(served.url))
        assert reader.base_url == served.control_url

        assert reader.health() == {"system": "smtp", "status": "ok"}
        [effect] = reader.ledger()["effects"]
        assert (effect["order_id"], effect["to"]) == (str(ORDER.id), ["ada@example.com"])
        assert reader.clear_faults() == {}
        # It has no faults to set, and says so.
        with pytest.raises(requests.HTTPError) as refused:
            reader.set_faults(down=True)
        assert refused.value.response.status_code == 400
        assert refused.value.response.json()["error"] == "no_faults"
    finally:
        served.stop()
    with pytest.raises(requests.ConnectionError):
        SandboxControl(served.control_url).health()


def test_the_sandbox_runner_refuses_a_place_list_without_the_http_contracts_systems() -> None:
    with pytest.raises(ValueError, match="no place for the sandboxes of warehouse, accounting"):
        run_sandbox({"erp": Place("127.0.0.1", 0)})


def test_a_system_without_a_sandbox_module_is_named() -> None:
    with pytest.raises(LookupError, match=r"no sandbox for the system 'crm'.*sandbox\.crm"):
        serve_own("crm", Place("127.0.0.1", 0))
