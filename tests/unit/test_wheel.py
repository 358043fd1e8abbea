"""The production wheel carries the hub, its tasks and adapters, and no sandbox.

``pip wheel`` builds it from a copy of the sources (a stale ``build/`` of the checkout cannot
add or hide a file); the import contract in pyproject.toml keeps the packages it holds from
importing the sandboxes they no longer carry.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "hub", "tasks", "adapters", "sandbox")


def build_wheel(tmp_path: Path) -> list[str]:
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path / "wheel"
    # No build isolation: the dev environment's setuptools, so the build needs no index.
    argv = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps"]
    argv += ["--no-build-isolation", "--quiet", "-w", str(out)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}\n{result.stderr}"
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_holds_no_sandbox(tmp_path: Path) -> None:
    names = build_wheel(tmp_path)
    packages = {name.split("/")[0] for name in names if name.endswith(".py")}
    assert packages == {"hub", "tasks", "adapters"}
    sandboxes = [name for name in names if "sandbox" in Path(name).parts]
    assert not sandboxes, f"sandbox modules in the wheel: {sandboxes}"
    # What the hub runs is there (the step tasks, the HTTP clients, the command line).
    for module in ("tasks/steps.py", "adapters/erp.py", "adapters/control.py", "hub/__main__.py"):
        assert module in names
