"""What every `dropkit` command shares: ``--quiet``, ``--verbose``, ``--no-progress``, the extras
it needs, and the checks that run before any work.

`dropkit.cli` adds the shared flags to every subcommand (`add_common_flags`), so a command
module only declares what is its own. A command declares the extras it needs with
``parser.set_defaults(extras=("lab",))``, or a function of the parsed arguments
(``extras=lambda args: ("ray",) if args.ray is not None else ()``); `check_extras` runs
before the command does anything.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from typing import Any

from dropkit._extras import require
from dropkit._progress import env_disabled
from dropkit.errors import DropkitError, DropkitValueError, expected

__all__ = ["add_common_flags", "check_extras", "flag_wording", "non_negative", "positive",
           "wants_progress"]


def _has(parser: argparse.ArgumentParser, flag: str) -> bool:
    return flag in parser._option_string_actions  # argparse offers no public lookup


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    """``--quiet``/``-q``, ``--verbose``/``-v`` and ``--no-progress`` (dest ``progress``),
    skipping any the command already defines itself."""
    group = parser.add_argument_group("output")
    if not _has(parser, "--quiet"):
        group.add_argument("-q", "--quiet", action="store_true",
                           help="only warnings and errors on stderr; no progress bars")
    if not _has(parser, "--verbose"):
        group.add_argument("-v", "--verbose", action="store_true",
                           help="also log dropkit's choices (strategy, caches, kernels)")
    if not _has(parser, "--no-progress"):
        group.add_argument("--no-progress", dest="progress", action="store_false",
                           help="no progress bars (TQDM_DISABLE=1 does the same)")
        parser.set_defaults(progress=True)


def wants_progress(args: argparse.Namespace) -> bool:
    """Bars only when not ``--no-progress``, not ``--quiet`` and not ``TQDM_DISABLE``."""
    return (bool(getattr(args, "progress", True)) and not getattr(args, "quiet", False)
            and not env_disabled())


def check_extras(args: argparse.Namespace, command: str) -> None:
    """Raise `dropkit._extras.MissingExtraError` if an extra the command needs is missing."""
    declared: Sequence[str] | Callable[[argparse.Namespace], Sequence[str]] = getattr(
        args, "extras", ())
    needed = declared(args) if callable(declared) else declared
    for extra in needed:
        require(extra, command)


def positive(flag: str, value: Any) -> None:
    """A count flag must be an integer >= 1 (``--samples 0`` is refused before any work)."""
    if value is not None and (not isinstance(value, int) or value < 1):
        raise DropkitValueError(expected(flag, "an integer >= 1", value))


def non_negative(flag: str, value: Any) -> None:
    """An integer >= 0 (seeds)."""
    if value is not None and (not isinstance(value, int) or value < 0):
        raise DropkitValueError(expected(flag, "an integer >= 0", value))


def seeds_flag(text: str) -> tuple[int, ...]:
    """``--seeds`` of ``dropkit lab`` and ``dropkit active``: comma-separated integers >= 0."""
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        seeds = ()
    if not seeds or any(s < 0 for s in seeds):
        raise DropkitValueError(expected("--seeds", "comma-separated integers >= 0 such as "
                                         "0,1,2", repr(text)))
    return seeds


def flag_wording(err: DropkitError, args: argparse.Namespace) -> DropkitError:
    """The library names its arguments (`` `splits_per_batch` ``); the user typed flags: each
    backquoted name that is one of this command's options becomes its flag
    (`` `--splits-per-batch` ``). Other names are left alone."""
    options = set(vars(args))

    def flag(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"`--{name.replace('_', '-')}`" if name in options else match.group(0)

    return type(err)(re.sub(r"`(\w+)`", flag, str(err)))
