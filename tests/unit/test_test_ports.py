"""The tests' own ports: no two uses of one suite share a port, and all fit in one slot."""

from __future__ import annotations

from pathlib import Path

from tests import ports


def test_no_two_uses_share_a_port_and_all_fit_in_a_slot() -> None:
    taken: dict[int, str] = {}
    for name, (first, count) in ports.OFFSETS.items():
        assert count > 0, name
        for offset in range(first, first + count):
            assert offset not in taken, f"{name} and {taken.get(offset)} both take +{offset}"
            taken[offset] = name
    assert max(taken) < ports.SLOT_WIDTH, "a second suite SLOT_WIDTH away would meet this one"


def test_a_port_past_its_range_is_refused() -> None:
    assert ports.port("stack", 3) == ports.PORT_BASE + 3
    try:
        ports.port("flower", 1)
    except ValueError as exc:
        assert "flower has 1 port(s)" in str(exc)
    else:
        raise AssertionError("flower's second port was given")


def test_a_base_in_the_kernels_ephemeral_ports_is_refused(tmp_path: Path) -> None:
    linux = tmp_path / "ip_local_port_range"
    linux.write_text("32768\t60999\n")

    said = ports.ephemeral_clash(36000, linux)

    assert said is not None and "overlap the kernel's ephemeral ports 32768-60999" in said
    assert ports.ephemeral_clash(32000, linux) is not None, "its last ports reach 32768"
    assert ports.ephemeral_clash(26000, linux) is None
    assert ports.ephemeral_clash(18100, tmp_path / "missing") is None
