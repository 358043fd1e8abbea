"""``make tryton``: a local Tryton on PostgreSQL, built once and cached as a template."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from sandbox.tryton.server import (
    DEFAULT_DATABASE,
    DEFAULT_PORT,
    HUB_PASSWORD,
    HUB_USER,
    TrytonSandbox,
    TrytonSetupError,
)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.tryton", description=__doc__)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--fresh", action="store_true", help="start over from the template")
    args = parser.parse_args()
    sandbox = TrytonSandbox()
    began = time.monotonic()
    try:
        template, built = sandbox.ensure_template()
        created = sandbox.create_database(args.database, fresh=args.fresh)
        process = sandbox.start(port=args.port, databases=[args.database])
    except TrytonSetupError as exc:
        print(f"make tryton: {exc}", file=sys.stderr)
        return 1
    how = "built now" if built else "cached"
    state = "copied from" if created else "kept; --fresh starts it over from"
    print(f"Tryton up in {time.monotonic() - began:.1f} s (template {template}, {how})")
    print(f"  database {args.database} ({state} the template)")
    print(
        f"  HUB_TRYTON__URL=http://127.0.0.1:{args.port} HUB_TRYTON__DATABASE={args.database} "
        f"HUB_TRYTON__USER={HUB_USER} HUB_TRYTON__PASSWORD={HUB_PASSWORD}"
    )
    signal.signal(signal.SIGTERM, lambda *_: process.terminate())
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait()


if __name__ == "__main__":
    sys.exit(main())
