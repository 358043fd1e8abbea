"""The registry: one list of systems and steps, and the pipelines made of them."""

from __future__ import annotations

import pytest

from hub.core.registry import (
    REGISTRY,
    Pipeline,
    Registry,
    Step,
    System,
    UnknownStep,
    UnknownSystem,
    reserve,
)


def a_registry() -> Registry:
    return Registry.of(
        systems=[System("erp", adapters={"http": "m:f"}, url="http://x", token="t")],
        steps=[
            Step("inventory", "erp", reserve),
            Step("extra", "erp", reserve, optional=True),
            Step("last", "erp", reserve),
        ],
    )


def test_the_hubs_pipeline_is_its_three_steps_each_naming_its_system() -> None:
    assert REGISTRY.pipeline().steps == ("inventory", "fulfillment", "invoice")
    assert [REGISTRY.system_of(step) for step in REGISTRY.step_names[:3]] == [
        "erp",
        "warehouse",
        "accounting",
    ]


def test_an_optional_step_runs_only_when_enabled_in_its_place() -> None:
    registry = a_registry()

    assert registry.pipeline().steps == ("inventory", "last")
    assert registry.pipeline({"extra"}).steps == ("inventory", "extra", "last")


def test_the_version_names_exactly_the_order_of_steps() -> None:
    three = Pipeline(("a", "b", "c"))

    assert three.version == Pipeline(("a", "b", "c")).version
    assert three.version != Pipeline(("a", "c", "b")).version
    assert three.version != Pipeline(("a", "b", "c", "d")).version
    assert three.starting_at("b") == ("b", "c")


def test_unknown_names_are_refused_naming_the_known_ones() -> None:
    with pytest.raises(UnknownStep, match=r"'nope'.*inventory, fulfillment, invoice"):
        REGISTRY.step("nope")
    with pytest.raises(UnknownSystem, match=r"'crm'.*erp"):
        REGISTRY.system("crm")
    with pytest.raises(UnknownStep, match="not in this pipeline"):
        Pipeline(("a",)).starting_at("b")
    with pytest.raises(ValueError, match="always runs"):
        a_registry().pipeline({"inventory"})


def test_a_step_calling_an_unknown_system_is_refused() -> None:
    with pytest.raises(UnknownSystem, match="'ghost'"):
        Registry.of(systems=[], steps=[Step("inventory", "ghost", reserve)])


def test_every_system_has_a_default_adapter_among_its_own() -> None:
    for system in REGISTRY.systems.values():
        assert system.default_adapter in system.adapters
    assert REGISTRY.system("erp").default_adapter == "http"
    assert REGISTRY.optional_steps == ("notify",)
