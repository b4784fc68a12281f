"""The ``agentdiff-coordination`` command."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="agentdiff-coordination",
        description="Locks, limits and events for AI agents.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("demo", help="run an offline demo: agents contending for an API and a record")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run

        return 0 if run() else 1
    parser.print_help()
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
