"""The `dropkit` command: each subcommand is a thin layer over the library.

Building the parser imports no torch (each command module imports its heavy dependencies
inside its ``run``), so ``dropkit --help`` is quick. Before a command runs, its extras are
checked and every flag validated; a mistake is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from dropkit._extras import MissingExtraError
from dropkit._log import cli_logging
from dropkit._progress import progress_env
from dropkit.commands._common import add_common_flags, check_extras, wants_progress
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

class _VersionAction(argparse.Action):
    """``--version`` without importing the package's torch-heavy modules up front."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("dropkit")
        except PackageNotFoundError:  # a source checkout on PYTHONPATH
            from dropkit import __version__ as text
        parser.exit(message=f"dropkit {text}\n")


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers that run something (``bench`` has a nested ``uci``)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [parser]
    return [leaf for sub in subs for child in dict.fromkeys(sub.choices.values())
            for leaf in _leaf_parsers(child)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dropkit", description="Dropout done right: layers, Monte Carlo dropout "
        "uncertainty, diagnostics and a claims lab.")
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    for leaf in _leaf_parsers(parser):
        add_common_flags(leaf)
    return parser


def _command_name(args: argparse.Namespace) -> str:
    inner = getattr(args, "bench_command", None)
    return f"dropkit {args.command}" + (f" {inner}" if inner else "")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    command = _command_name(args)
    try:
        check_extras(args, command)  # before any work: one line instead of a late traceback
        args.progress = wants_progress(args)
        with cli_logging(quiet=args.quiet, verbose=args.verbose), progress_env(args.progress):
            return int(args.func(args) or 0)
    except MissingExtraError as err:
        print(err, file=sys.stderr)  # already names the command and the install line
        return 2
    except DropkitError as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C: one line, no traceback; 130 = 128 + SIGINT, what shells report
        print(f"{command}: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The ``dropkit`` executable: `main`, then exit with its code.

    Once the command has returned, a Ctrl-C has nothing left to interrupt: SIGINT gets its
    default action, so one that lands during the interpreter's shutdown (torch's atexit
    hooks) ends the process by the signal instead of printing an "Exception ignored"
    traceback.
    """
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
