"""Numbers in prose, formatted once: a signed change, a magnitude, and its direction in words.

The report and the lab's sentences use these so a change never reads "lowers error by -4.68 pp"
or "NLL +-0.395 nats":

>>> signed(-4.678, "pp", 2)
'-4.68 pp'
>>> signed(0.3951, "nats", 3)
'+0.395 nats'
>>> signed(-0.0004, "pp", 2)   # rounds to zero: no sign
'0.00 pp'
>>> f"{direction(-4.678, 'raises', 'lowers')} test error by {magnitude(-4.678, 'pp', 2)}"
'lowers test error by 4.68 pp'
>>> signed(12.5, "%", 1)       # a percent sign sits on the number
'+12.5%'
"""

from __future__ import annotations

import math

from dropkit.errors import DropkitTypeError, DropkitValueError, expected

__all__ = ["direction", "magnitude", "signed"]


def _check(value: float, digits: int) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DropkitTypeError(expected("value", "a real number", type(value).__name__))
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
        raise DropkitValueError(expected("digits", "an int >= 0 (decimal places)", digits))
    return float(value)


def _unit(text: str, unit: str) -> str:
    if not unit:
        return text
    return text + unit if unit == "%" else f"{text} {unit}"


def _rounds_to_zero(value: float, digits: int) -> bool:
    return float(f"{abs(value):.{digits}f}") == 0.0


def signed(value: float, unit: str = "", digits: int = 2) -> str:
    """``value`` with an explicit sign (``+`` or ``-``), ``digits`` decimal places and its
    unit; a value that rounds to zero has no sign; non-finite values print as ``nan``,
    ``+inf``, ``-inf``."""
    v = _check(value, digits)
    if math.isnan(v):
        return _unit("nan", unit)
    if math.isinf(v):
        return _unit("+inf" if v > 0 else "-inf", unit)
    if _rounds_to_zero(v, digits):
        return _unit(f"{0.0:.{digits}f}", unit)
    return _unit(f"{v:+.{digits}f}", unit)


def magnitude(value: float, unit: str = "", digits: int = 2) -> str:
    """``|value|`` with ``digits`` decimal places and its unit (to follow ``direction``)."""
    v = _check(value, digits)
    return _unit("nan" if math.isnan(v) else f"{abs(v):.{digits}f}", unit)


def direction(value: float, up: str, down: str, same: str = "does not change",
              digits: int = 2) -> str:
    """``up`` for a positive change, ``down`` for a negative one, ``same`` when it rounds to
    zero at ``digits`` decimal places (the wording then agrees with `magnitude`)."""
    v = _check(value, digits)
    if math.isnan(v) or _rounds_to_zero(v, digits):
        return same
    return up if v > 0 else down
