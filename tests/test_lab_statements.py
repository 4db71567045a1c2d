"""Statements of the lab's claims: the helpers' rules by hand, and the runner's handling."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import pytest

from dropkit.errors import DropkitValueError
from dropkit.lab import runner as R
from dropkit.lab import statements as S
from dropkit.lab.base import ClaimResult, LabConfig
from dropkit.lab.runner import run_lab
from tests.lab_claim_checks import verdict_by_hand


def _mean_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    m = sum(values) / n
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1) / n)


@pytest.mark.parametrize(("effects", "threshold", "verdict"), [
    ([1.0, 1.1, 0.9], 0.5, "supported"),  # m = 1.0, se = 0.058: m - 2 se = 0.88 > 0.5
    ([0.6, 0.1, 0.9], 0.5, "partly supported"),  # m = 0.53 > 0, m + 2 se = 0.99 > 0.5
    ([0.1, 0.2, 0.15], 0.5, "not supported"),  # m + 2 se = 0.21 < 0.5
    ([-1.0, -1.2, -0.8], 0.0, "not supported"),
])
def test_effect_statement_by_hand(effects, threshold, verdict) -> None:
    st = S.effect_statement("x.y", "g", "a statement", effects, min_effect=threshold,
                            what="an effect", unit="pp")
    m, se = _mean_se(effects)
    assert st.verdict == verdict
    assert st.numbers["mean"] == pytest.approx(m) and st.numbers["se"] == pytest.approx(se)
    assert [c.holds for c in st.conditions] == [m - 2 * se > threshold,
                                               m > 0 and m + 2 * se > threshold]
    assert st.conditions[0].measured.endswith(f"{S.fmt(m - 2 * se)} pp")
    # the rule comes first and names no measured number
    assert st.criterion.startswith("effect = an effect") and S.fmt(m) not in st.criterion


@pytest.mark.parametrize("verdicts", [
    ["supported"] * 3, ["not supported"] * 2, ["supported", "not supported"],
    ["partly supported"], ["partly supported", "supported"],
])
def test_all_of_and_group_summary_follow_the_rule(verdicts) -> None:
    assert S.all_of([(str(i), v) for i, v in enumerate(verdicts)]) == verdict_by_hand(verdicts)
    statements = [S.Statement(f"g.{i}", "g", "t", v, "supported if ...")
                  for i, v in enumerate(verdicts)]
    verdict, text = S.group_summary(statements)
    assert verdict == verdict_by_hand(verdicts)
    assert ("The statements disagree" in text) == (len(set(verdicts)) > 1)
    for s in statements:
        assert f"[{s.id}] {s.verdict}" in text


def test_all_of_rejects_unjudged_parts() -> None:
    with pytest.raises(ValueError, match="parts must be judged"):
        S.all_of([("a", "not judged")])


def test_select_claims_by_group_or_statement_id() -> None:
    assert R.select_claims(["bn.recipe"]) == ["batchnorm"]
    assert R.select_claims(["tf", "scale.counter", "reg"]) == [
        "regularization", "transformer-placement", "scale"]
    assert R.select_claims(["transformer", "bayes.mc", "bayesian"]) == [
        "bayesian", "transformer-placement"]
    assert set(R.STATEMENTS.values()) == set(R.CLAIMS)  # every claim judges statements
    with pytest.raises(DropkitValueError, match=r"unknown id.*bn\.nope"):
        R.select_claims(["bn.nope"])


def _claim(verdict: str, statements: list[S.Statement]) -> ClaimResult:
    return ClaimResult(id="fake", title="t", claim="c", setup="s", verdict=verdict,
                       criterion="r", key_number="k", numbers={"a": 1}, seeds=[0],
                       statements=statements)


def test_results_json_holds_the_statements(tmp_path: Path, monkeypatch) -> None:
    statements = [S.effect_statement("f.a", "fake", "first", [1.0, 1.2], min_effect=0.1,
                                     what="e"),
                  S.Statement("f.b", "fake", "second", "not supported", "supported if x",
                              [S.Condition("x > 1", "0.5", False)], {"x": float("nan")})]
    module = types.ModuleType("fake_lab_st")
    module.run = lambda cfg: _claim("partly supported", statements)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_lab_st", module)
    monkeypatch.setitem(sys.modules, "fake_lab_st.claim", module)
    run = run_lab(LabConfig(seeds=(0,), progress=False), out=tmp_path,
                  registry={"fake": "fake_lab_st.claim"}, command="test")
    assert run.ok
    doc = json.loads((tmp_path / "results.json").read_text())
    rec = doc["claims"][0]["statements"]
    assert [r["id"] for r in rec] == ["f.a", "f.b"]
    assert set(rec[0]) == set(R.STATEMENT_FIELDS)
    assert rec[0]["numbers"]["per_seed"] == [1.0, 1.2] and rec[0]["verdict"] == "supported"
    assert rec[1]["conditions"] == [{"rule": "x > 1", "measured": "0.5", "holds": False}]
    assert rec[1]["numbers"]["x"] is None  # non-finite -> null, as for a claim's numbers


def test_a_verdict_that_does_not_follow_the_statements_fails_the_claim(
        tmp_path: Path, monkeypatch) -> None:
    statements = [S.Statement("f.a", "fake", "t", "supported", "supported if x")]
    module = types.ModuleType("fake_lab_st2")
    module.run = lambda cfg: _claim("not supported", statements)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_lab_st2", module)
    monkeypatch.setitem(sys.modules, "fake_lab_st2.claim", module)
    run = run_lab(LabConfig(seeds=(0,), progress=False), out=tmp_path,
                  registry={"fake": "fake_lab_st2.claim"}, command="test")
    assert not run.ok and "its statements give 'supported'" in run.failed[0].error
