"""One exception family for everything dropkit rejects.

Every message names the argument, what was expected and what was received, in the form
``Expected argument `p` to be a float in [0, 1), but got 1.5.``
"""

from __future__ import annotations


class DropkitError(Exception):
    """Base class of every error dropkit raises on purpose."""


class DropkitValueError(DropkitError, ValueError):
    """An argument has the right type but a wrong value (range, shape, NaN, unknown option)."""


class DropkitTypeError(DropkitError, TypeError):
    """An argument has the wrong type."""


class NoDropoutError(DropkitValueError):
    """The model has no dropout that dropkit can switch on (MC dropout is impossible)."""


def expected(arg: str, what: str, got: object) -> str:
    """The one wording of a bad-argument message."""
    return f"Expected argument `{arg}` to be {what}, but got {got}."
