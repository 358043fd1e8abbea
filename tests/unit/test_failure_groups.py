"""Failure groups: the fingerprint masks what varies between orders, and nothing else."""

from __future__ import annotations

import re

import pytest

from hub.core.failure_groups import GROUP_ID_PATTERN, GroupKey, fingerprint


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("SKU-020: 1 wanted, 0 available", "<id>: # wanted, # available"),
        ("SKU-031: 4 wanted, 1 available", "<id>: # wanted, # available"),
        ("unknown sku SKU-777", "unknown sku <id>"),
        ("unknown sku UI-4f1c9a0b2e", "unknown sku <id>"),
        ("erp sandbox is down", "erp sandbox is down"),
        ("injected failure", "injected failure"),
        (
            "order 48e10ff8-5830-415b-98fd-19815bc188ba already invoiced",
            "order <id> already invoiced",
        ),
        ("reservation abcdefabcdefab unknown", "reservation <id> unknown"),
        ("total 19.90 EUR exceeds 1000", "total # EUR exceeds #"),
        ("due 2026-11-25 at 09:15:55.", "due # at #:#:#."),
        (
            "POST http://127.0.0.1:19501/inventory/reservations: ConnectionError: refused",
            "POST http://#:#/inventory/reservations: ConnectionError: refused",
        ),
        ("line 3: qty -2 is not positive", "line #: qty -# is not positive"),
        ("  several\n  lines\tand   spaces ", "several lines and spaces"),
        ("", ""),
        ("HTTP/1.1 502 Bad Gateway", "HTTP/# # Bad Gateway"),
        ("a facade is not an id", "a facade is not an id"),
    ],
)
def test_the_fingerprint_masks_ids_and_numbers(message: str, expected: str) -> None:
    assert fingerprint(message) == expected


def test_the_fingerprint_is_cut_to_a_readable_length() -> None:
    assert len(fingerprint("word " * 200)) == 200


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        (("inventory", "permanent", "out_of_stock", "SKU-020: 1 wanted, 0 available"),
         ("inventory", "permanent", "out_of_stock", "SKU-031: 4 wanted, 1 available"), True),
        (("inventory", "permanent", "out_of_stock", "SKU-020: 1 wanted, 0 available"),
         ("inventory", "permanent", "out_of_stock", "unknown sku SKU-020"), False),
        (("inventory", "exhausted", "down", "erp sandbox is down"),
         ("inventory", "permanent", "down", "erp sandbox is down"), False),
        (("inventory", "exhausted", "down", "erp sandbox is down"),
         ("fulfillment", "exhausted", "down", "erp sandbox is down"), False),
        (("invoice", "permanent", "a", "rejected"),
         ("invoice", "permanent", "b", "rejected"), False),
        (("invoice", "poison", None, "killed"), ("invoice", "poison", "", "killed"), True),
    ],
)  # fmt: skip
def test_a_group_is_step_kind_code_and_fingerprint(
    first: tuple[str, str, str | None, str], second: tuple[str, str, str | None, str], same: bool
) -> None:
    one, two = (
        GroupKey.of(step=step, kind=kind, code=code, message=message)
        for step, kind, code, message in (first, second)
    )

    assert (one.group_id == two.group_id) is same


def test_a_group_id_is_short_stable_and_url_safe() -> None:
    key = GroupKey.of(
        step="inventory", kind="permanent", code="out_of_stock", message="SKU-1: 1 wanted"
    )

    assert re.match(GROUP_ID_PATTERN, key.group_id)
    # Ids are written in runbooks and tickets: the same cause keeps its id across releases.
    assert key.group_id == "f03804e31f8d"
