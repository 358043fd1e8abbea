"""``hub breakers``: an open breaker read at a glance, its times to the second and from now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from hub.db.engine import unit_of_work
from hub.db.models import BreakerState
from hub.entrypoints.cli.main import cli


def test_an_open_breaker_shows_since_when_and_until_when_relative_to_now() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with unit_of_work() as session:
        session.add(
            BreakerState(
                system="erp",
                state="open",
                opened_at=now - timedelta(seconds=40),
                retry_at=now + timedelta(seconds=600),
            )
        )

    result = CliRunner().invoke(cli, ["breakers"], terminal_width=220)

    assert result.exit_code == 0, result.output
    [erp] = [line for line in result.output.splitlines() if "erp" in line]
    opened = (now - timedelta(seconds=40)).strftime("%Y-%m-%d %H:%M:%S")
    assert f"{opened} (4" in erp and " s ago)" in erp, erp  # 40 s, or 41 on a slow second
    assert "(in 59" in erp or "(in 600 s)" in erp, erp
    assert ".0000" not in erp and "+00:00" not in erp, erp


def test_a_system_cooling_after_a_429_shows_until_when_its_rate_and_its_429s() -> None:
    from hub.core.limits import SystemLimits, ThrottlePolicy
    from hub.db import limits

    with unit_of_work() as session:
        limits.throttled(
            session, "erp", retry_after=600, limits=SystemLimits(), policy=ThrottlePolicy()
        )

    result = CliRunner().invoke(cli, ["breakers"], terminal_width=220)

    assert result.exit_code == 0, result.output
    # The limits table's line: the breakers table lists erp too now, closed.
    [erp] = [
        line
        for line in result.output.splitlines()
        if "erp" in line and "429" not in line and " closed " not in line
    ]
    assert "(in 59" in erp or "(in 600 s)" in erp, erp
    assert "(in 6" in erp and " 10." in erp and erp.rstrip(" │|").endswith("1"), erp


def test_every_system_is_listed_even_one_whose_breaker_never_tripped() -> None:
    with unit_of_work() as session:
        session.add(BreakerState(system="erp", state="open", held=7))

    result = CliRunner().invoke(cli, ["breakers"], terminal_width=220)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for system in ("erp", "warehouse", "accounting"):  # accounting was never shown before
        assert any([cell.strip() for cell in line.split("│")[1:2]] == [system] for line in lines), (
            result.output
        )
    [erp] = [line for line in lines if " erp " in line]
    assert " 7 " in erp, erp
    [accounting] = [line for line in lines if " accounting " in line]
    assert " closed " in accounting, accounting
    said = " ".join(result.output.split())
    assert "holds: how many times a step was turned back" in said
    assert "not the orders waiting" in said
