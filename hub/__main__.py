"""The ``hub`` command (``python -m hub``, or the ``hub`` console script): every operator
command of ``hub.entrypoints.cli``, plus ``hub demo``."""

from __future__ import annotations

import sys

from hub.demo import command as demo_command
from hub.entrypoints.cli.main import cli

demo_command.register(cli)


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
