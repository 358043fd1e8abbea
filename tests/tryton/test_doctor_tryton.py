"""``hub doctor``'s Tryton checks against a real trytond: each mistake named, with its fix."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from hub.observability.tryton_check import ADVISED_MODULE, FORCE_GROUP, check_tryton
from hub.settings import Settings
from sandbox.tryton.server import TrytonSandbox
from tests.tryton.conftest import LiveTryton


def settings_for(
    monkeypatch: pytest.MonkeyPatch, tryton: LiveTryton, **tryton_env: str
) -> Settings:
    monkeypatch.setenv("HUB_ERP_ADAPTER", "tryton")
    for key, value in {
        "URL": tryton.url,
        "DATABASE": tryton.database,
        "USER": "hub",
        "PASSWORD": "hub-sandbox-password",
        **tryton_env,
    }.items():
        monkeypatch.setenv(f"HUB_TRYTON__{key}", value)
    return Settings()


def test_a_good_connection_is_no_problem(
    monkeypatch: pytest.MonkeyPatch, tryton: LiveTryton
) -> None:
    assert check_tryton(settings_for(monkeypatch, tryton)) == []


def test_no_tryton_system_checks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_TRYTON__URL", "http://127.0.0.1:1")
    assert check_tryton(Settings()) == []


def test_a_refused_login_names_the_user_and_the_settings(
    monkeypatch: pytest.MonkeyPatch, tryton: LiveTryton
) -> None:
    (problem,) = check_tryton(settings_for(monkeypatch, tryton, PASSWORD="not-the-password"))
    assert "login of 'hub' is refused" in problem.found
    assert "HUB_TRYTON__PASSWORD" in problem.fix


def test_a_database_tryton_does_not_serve_says_how_to_serve_it(
    monkeypatch: pytest.MonkeyPatch, tryton: LiveTryton
) -> None:
    # A PostgreSQL database that exists but that this trytond was not started with.
    (problem,) = check_tryton(settings_for(monkeypatch, tryton, DATABASE="postgres"))
    assert "not for that database" in problem.found
    assert "trytond -d postgres" in problem.fix


def test_nothing_answering_says_start_tryton(
    monkeypatch: pytest.MonkeyPatch, tryton: LiveTryton
) -> None:
    (problem,) = check_tryton(settings_for(monkeypatch, tryton, URL="http://127.0.0.1:1"))
    assert "nothing answers" in problem.found
    assert "make tryton" in problem.fix


def test_a_hub_user_that_may_force_an_assignment_is_a_problem(
    monkeypatch: pytest.MonkeyPatch, tryton: LiveTryton
) -> None:
    admin = tryton.admin()
    (user,) = admin.call("model.res.user.search", [["login", "=", "hub"]], 0, 1, None)
    (group,) = admin.call("model.res.group.search", [["name", "=", FORCE_GROUP]], 0, 1, None)
    admin.call("model.res.user.write", [user], {"groups": [["add", [group]]]})
    try:
        (problem,) = check_tryton(settings_for(monkeypatch, tryton))
    finally:
        admin.call("model.res.user.write", [user], {"groups": [["remove", [group]]]})
    assert FORCE_GROUP in problem.found
    assert "remove 'hub'" in problem.fix


@contextlib.contextmanager
def module_state(tryton: LiveTryton, name: str, state: str) -> Iterator[None]:
    """A module's row in Tryton's own ir_module in another state for the test (what doctor
    reads: Tryton answers ir.module from that table), put back afterwards."""
    with contextlib.closing(TrytonSandbox().connect(tryton.database)) as connection:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT state FROM ir_module WHERE name = %s", (name,))
            (before,) = cursor.fetchone()
            cursor.execute("UPDATE ir_module SET state = %s WHERE name = %s", (state, name))
            try:
                yield
            finally:
                cursor.execute("UPDATE ir_module SET state = %s WHERE name = %s", (before, name))


def test_a_module_the_steps_need_not_activated_is_named_with_how_to_activate_it(
    monkeypatch: pytest.MonkeyPatch, tryton: LiveTryton
) -> None:
    with module_state(tryton, "account_invoice_stock", "not activated"):
        (problem,) = check_tryton(settings_for(monkeypatch, tryton))
    assert problem.severity == "problem"
    assert "account_invoice_stock not activated" in problem.found
    assert "-u account_invoice_stock --activate-dependencies" in problem.fix


def test_without_the_hubs_module_doctor_advises_it_and_finds_no_problem(
    monkeypatch: pytest.MonkeyPatch, tryton: LiveTryton
) -> None:
    with module_state(tryton, ADVISED_MODULE, "not activated"):
        (advice,) = check_tryton(settings_for(monkeypatch, tryton))
    assert advice.severity == "advice"
    assert ADVISED_MODULE in advice.found and ADVISED_MODULE in advice.fix


def test_every_sku_of_the_sample_order_is_a_salable_product_or_named(
    monkeypatch: pytest.MonkeyPatch, tryton: LiveTryton
) -> None:
    good = settings_for(monkeypatch, tryton, SAMPLE_SKUS="SKU-001, SKU-SCARCE")
    assert check_tryton(good) == []

    (missing,) = check_tryton(settings_for(monkeypatch, tryton, SAMPLE_SKUS="SKU-001,NO-SUCH-9"))
    assert "no active product has the code NO-SUCH-9" in missing.found
    assert "SKU-001" not in missing.found
    assert "Code" in missing.fix

    admin = tryton.admin()
    (template,) = admin.call(
        "model.product.template.search", [["products.code", "=", "SKU-010"]], 0, 1, None
    )
    admin.call("model.product.template.write", [template], {"salable": False})
    try:
        (unsalable,) = check_tryton(settings_for(monkeypatch, tryton, SAMPLE_SKUS="SKU-010"))
    finally:
        admin.call("model.product.template.write", [template], {"salable": True})
    assert "SKU-010 are not salable" in unsalable.found
    assert "Salable" in unsalable.fix
