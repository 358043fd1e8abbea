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
