"""dropkit's logging convention: what dropkit *does* goes to the ``logging`` logger ``dropkit``
(and children such as ``dropkit.bench``); what the *user should change* is a ``warnings`` warning.

A library never configures logging for its users: the ``dropkit`` logger gets a
``NullHandler`` (so nothing prints unless the application sets logging up), and only the
command line (`cli_logging`) attaches a handler to stderr, for the duration of one command:
info and up by default, warnings and up with ``--quiet``, debug with ``--verbose``.
Debug level carries the choices dropkit makes for you (sampling strategy, cache builds, the
kernel used); info level what a run is doing; warning level a fallback that changes speed or
results (a missing compiler, a skipped site).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

__all__ = ["ROOT", "cli_logging", "get_logger"]

ROOT = "dropkit"
logging.getLogger(ROOT).addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """The logger for module ``name`` (pass ``__name__``): a child of ``dropkit``."""
    if name != ROOT and not name.startswith(ROOT + "."):
        name = f"{ROOT}.{name}"
    return logging.getLogger(name)


@contextmanager
def cli_logging(*, quiet: bool = False, verbose: bool = False,
                stream: IO[str] | None = None) -> Iterator[logging.Handler]:
    """Print ``dropkit`` log records as ``dropkit: message`` lines on stderr within the block;
    the logger's level and handlers are restored afterwards (tests run commands in-process)."""
    logger = logging.getLogger(ROOT)
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    handler.setLevel(level)
    before = logger.level
    logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)
