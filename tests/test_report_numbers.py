"""Numbers in prose (`dropkit.report.numbers`): checked against Python's own rounding, over a
grid of values, and for the wordings issue 13 found ("by -4.68 pp", "+-0.395")."""

from __future__ import annotations

import doctest
import itertools
import math

import pytest

import dropkit.report.numbers as numbers
from dropkit.errors import DropkitTypeError, DropkitValueError
from dropkit.report.numbers import direction, magnitude, signed

VALUES = [-4.678, -0.3951, -0.005, -0.0049, -1e-9, 0.0, -0.0, 1e-9, 0.0049, 0.005, 0.3951,
          4.678, 1234.5678, -1234.5678]


@pytest.mark.parametrize(("value", "digits"), list(itertools.product(VALUES, [0, 1, 2, 3])))
def test_signed_reads_back_as_the_rounded_value(value: float, digits: int) -> None:
    text = signed(value, "pp", digits)
    number, unit = text.split(" ")
    assert unit == "pp"
    assert float(number) == round(value, digits) or float(number) == float(f"{value:.{digits}f}")
    assert len(number.split(".")[-1]) == digits if digits else "." not in number
    rounded = float(f"{abs(value):.{digits}f}")
    # an explicit sign exactly when the rounded value is not zero
    assert number[0] == ("+" if value > 0 else "-") if rounded else number[0].isdigit()
    assert "+-" not in text and "-+" not in text and "--" not in text


@pytest.mark.parametrize(("value", "digits"), list(itertools.product(VALUES, [1, 2])))
def test_direction_and_magnitude_say_the_same_as_signed(value: float, digits: int) -> None:
    words = direction(value, "raises", "lowers", "leaves", digits)
    size = float(magnitude(value, "pp", digits).split(" ")[0])
    assert size >= 0
    sign = {"raises": 1, "lowers": -1, "leaves": 0}[words]
    assert sign * size == float(signed(value, "pp", digits).split(" ")[0])


def test_the_wordings_issue_13_found() -> None:
    assert f"lowers test error by {magnitude(-4.68, 'pp')}" == "lowers test error by 4.68 pp"
    assert f"NLL {signed(-0.395, 'nats', 3)}" == "NLL -0.395 nats"
    assert signed(12.5, "%", 1) == "+12.5%" and signed(3.0) == "+3.00"
    assert signed(math.nan, "pp") == "nan pp" and signed(-math.inf) == "-inf"


def test_bad_input() -> None:
    with pytest.raises(DropkitTypeError, match="Expected argument `value` to be a real number"):
        signed("1.0")  # type: ignore[arg-type]
    with pytest.raises(DropkitTypeError, match="Expected argument `value`"):
        magnitude(True)
    with pytest.raises(DropkitValueError, match="Expected argument `digits` to be an int >= 0"):
        signed(1.0, "pp", -1)


def test_docstring_examples() -> None:
    result = doctest.testmod(numbers)
    assert result.attempted >= 5 and result.failed == 0
