"""Where the hub reads a sandbox's /_ endpoints (its ledger): one rule for every system."""

from __future__ import annotations

import pytest

from adapters.control import control_url


@pytest.mark.parametrize(
    ("system_url", "expected"),
    [
        ("http://127.0.0.1:8101", "http://127.0.0.1:8101"),
        ("http://127.0.0.1:8101/", "http://127.0.0.1:8101"),
        ("https://erp.example:8443", "https://erp.example:8443"),
        # A system reached over another protocol: HTTP on the next port.
        ("smtp://127.0.0.1:8104", "http://127.0.0.1:8105"),
        ("smtp://[::1]:2525", "http://[::1]:2526"),
    ],
)
def test_each_system_has_one_control_url(system_url: str, expected: str) -> None:
    assert control_url(system_url) == expected


def test_a_url_without_a_port_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"needs a host and a port: 'smtp://mail.example'"):
        control_url("smtp://mail.example")
