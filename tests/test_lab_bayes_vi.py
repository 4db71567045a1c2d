"""[bayes.vi]: the concentration measurement and its rule, by value."""

from __future__ import annotations

import numpy as np
import pytest

from dropkit.lab import bayes_vi as V


def test_slope_equals_numpy_polyfit() -> None:
    rng = np.random.default_rng(0)
    ns = [20, 80, 320, 1280]
    values = list(np.exp(rng.normal(size=4)))
    expected = np.polyfit(np.log(ns), np.log(values), 1)[0]
    assert V.slope(ns, values) == pytest.approx(expected, rel=1e-12)
    assert V.slope([10, 100], [1.0, 0.01]) == pytest.approx(-2.0)


def test_quick_measure_reference_concentrates_and_repeats() -> None:
    s = V.VISettings().quick()
    a = V.measure(s, 3)
    assert a == V.measure(s, 3)  # pure in (settings, seed)
    assert a["n"] == [2 * k for k in s.sizes]
    # the exact last-layer Gaussian posterior: its variance in the data shrinks with n (8x the
    # data here), about like 1/n for a well-specified model
    assert a["reference_var"][1] < a["reference_var"][0] / 3
    assert a["reference_slope"] == pytest.approx(V.slope(a["n"], a["reference_var"]))
    assert a["mc_dropout_slope"] == pytest.approx(V.slope(a["n"], a["mc_dropout_var"]))


def _seeds(mc: list[float], ref: list[float]) -> list[dict]:
    return [{"n": [20, 80], "mc_dropout_var": [1.0, 1.0], "reference_var": [1.0, 0.25],
             "mc_dropout_slope": m, "reference_slope": r} for m, r in zip(mc, ref, strict=True)]


@pytest.mark.parametrize(("mc", "ref", "verdict"), [
    ([-0.9, -1.0, -1.1], [-1.0, -1.0, -1.0], "supported"),
    ([-0.3, -0.31, -0.29], [-1.0, -1.0, -1.0], "partly supported"),
    ([-0.9, -1.0, -1.1], [0.1, 0.0, -0.1], "partly supported"),  # reference does not concentrate
    ([0.0, -0.05, 0.05], [-1.0, -1.0, -1.0], "not supported"),
])
def test_statement_rule(mc: list[float], ref: list[float], verdict: str) -> None:
    st = V.statement(V.VISettings(), _seeds(mc, ref))
    assert st.verdict == verdict
    assert st.numbers["mc_dropout_slope"]["mean"] == pytest.approx(sum(mc) / 3)
    m = sum(mc) / 3
    se = float(np.std(mc, ddof=1) / np.sqrt(3))
    assert st.conditions[1].holds == (m + 2 * se < V.MAX_SLOPE)
