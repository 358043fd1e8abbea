"""``make demo`` with no server around: it finds nothing, says so, and completes on embedded parts.

The default addresses it probes are pointed at a closed port, and no database or broker URL is
set, which is a laptop with only Python as far as the demo can tell.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hub.demo.processes import http_ok
from tests.e2e_trial.conftest import PORT_BASE

DEMO_PORT = PORT_BASE + 4
NOTHING_LISTENS = "127.0.0.1:1"


def test_the_demo_runs_in_trial_mode_when_nothing_answers(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HUB_DATABASE_URL", "HUB_BROKER_URL")}
    env.update(
        {
            "HUB_TRIAL_PROBE_POSTGRES": NOTHING_LISTENS,
            "HUB_TRIAL_PROBE_RABBITMQ": NOTHING_LISTENS,
            "HUB_TRIAL_DIR": str(tmp_path / "trial"),
            "HUB_API_PORT": str(DEMO_PORT),
            "HUB_ERP_URL": f"http://127.0.0.1:{DEMO_PORT + 1}",
            "HUB_WAREHOUSE_URL": f"http://127.0.0.1:{DEMO_PORT + 2}",
            "HUB_ACCOUNTING_URL": f"http://127.0.0.1:{DEMO_PORT + 3}",
        }
    )

    run = subprocess.run(
        [sys.executable, "-m", "hub", "demo", "--orders", "8"],
        env=env,
        cwd=tmp_path,  # no .env of the checkout: nothing configured at all
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert "TRIAL MODE" in output and "Missing in trial mode" in output
    assert f"nothing answers at {NOTHING_LISTENS} (PostgreSQL)" in output
    assert "every order completed, each effect applied once" in output
    assert "replayed: order" in output
    assert (tmp_path / "trial" / "hub.sqlite3").exists()
    urls = [f"http://127.0.0.1:{DEMO_PORT + n}" for n in range(4)]
    assert not any(http_ok(url)() for url in urls), "the demo left a process running"
