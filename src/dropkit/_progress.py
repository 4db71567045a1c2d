"""Progress bars that follow the user's wishes: ``TQDM_DISABLE``, ``--no-progress`` and logs.

tqdm reads its ``TQDM_*`` environment variables once, when it is imported, and an explicit
``disable=False`` beats them; so every dropkit bar is made by `progress_bar`, which reads the
environment at call time. When stderr is not a terminal (a log file, CI) the bar is redrawn
at most once a minute instead of ten times a second: a long run writes a few lines, not
megabytes of carriage returns.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any

__all__ = ["NON_TTY_INTERVAL_S", "env_disabled", "progress_bar", "progress_enabled",
           "progress_env"]

#: Seconds between redraws when the output is not a terminal (tqdm's default is 0.1).
NON_TTY_INTERVAL_S = 60.0


def env_disabled() -> bool:
    """``TQDM_DISABLE`` set to anything non-empty (tqdm's own rule: ``bool(value)``)."""
    return bool(os.environ.get("TQDM_DISABLE", ""))


def progress_enabled(requested: bool = True) -> bool:
    """Whether a bar should show: asked for, and not turned off by ``TQDM_DISABLE``."""
    return bool(requested) and not env_disabled()


def _is_tty(stream: IO[str] | None) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed or detached stream
        return False


def _mininterval(stream: IO[str] | None) -> float:
    env = os.environ.get("TQDM_MININTERVAL")
    if env:
        try:
            return float(env)
        except ValueError:
            pass  # tqdm itself ignores a value it cannot read; so do we
    return 0.1 if _is_tty(stream) else NON_TTY_INTERVAL_S


def progress_bar(iterable: Iterable[Any] | None = None, *, enabled: bool = True,
                 file: IO[str] | None = None, **kwargs: Any) -> Any:
    """``tqdm(iterable, **kwargs)`` that is off when ``enabled`` is false or ``TQDM_DISABLE``
    is set, and redraws at most every `NON_TTY_INTERVAL_S` seconds when ``file`` (default
    stderr) is not a terminal. ``kwargs`` go to tqdm (``desc``, ``total``, ``unit``, ...)."""
    from tqdm.auto import tqdm  # imported here so `dropkit --help` stays light

    stream = file if file is not None else sys.stderr
    kwargs.setdefault("mininterval", _mininterval(stream))
    return tqdm(iterable, disable=not progress_enabled(enabled), file=stream, **kwargs)


@contextmanager
def progress_env(enabled: bool) -> Iterator[None]:
    """Within the block, ``TQDM_DISABLE=1`` when ``enabled`` is false (so bars made with
    `progress_bar`, and tqdm bars imported later, stay off); restored afterwards."""
    before = os.environ.get("TQDM_DISABLE")
    if not enabled:
        os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = before
