"""The `dropkit` command: each subcommand is a thin layer over the library."""

from __future__ import annotations

import argparse
import importlib
import sys

from dropkit import __version__
from dropkit.errors import DropkitError

# Each module exposes register(subparsers), which adds a parser and sets `func(args) -> int`.
COMMANDS = (
    "dropkit.commands.lab",
    "dropkit.commands.demo",
    "dropkit.commands.lint",
    "dropkit.commands.bench",
    "dropkit.commands.active",
    "dropkit.commands.score",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dropkit", description="Dropout done right: layers, Monte Carlo dropout "
        "uncertainty, diagnostics and a claims lab.")
    parser.add_argument("--version", action="version", version=f"dropkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DropkitError as err:
        print(f"dropkit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C: one line, no traceback; 130 = 128 + SIGINT, what shells report
        print(f"dropkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
