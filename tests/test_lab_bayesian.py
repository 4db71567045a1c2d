"""Claim 3 (MC dropout as Bayesian inference): the quick run, its verdict rule, and invariants."""

from __future__ import annotations

import itertools

import pytest
import torch
from sklearn.metrics import roc_auc_score

from dropkit.lab import bayesian as B
from dropkit.lab.base import VERDICTS, LabConfig
from tests.lab_claim_checks import check_claim, check_statements, rejudge
from tests.zoo.small import assert_same_state, snapshot

CFG = LabConfig(quick=True, seeds=(0, 1), progress=False)


@pytest.fixture(scope="module")
def result():
    rng_before = torch.get_rng_state()
    out = B.run(CFG)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's stream is untouched
    return out


def test_quick_run_structure(result):
    check_claim(result, CFG, "bayesian")
    assert len(result.numbers["per_seed"]) == len(CFG.seeds)
    assert result.numbers["angles"] == list(B.QUICK.angles)


def test_verdict_is_recomputed_from_the_effects(result):
    effects, parts = result.numbers["effects"], result.numbers["part_verdicts"]
    assert parts["detection"] == rejudge(effects["auroc_gain"], B.MIN_AUROC_GAIN)
    assert parts["calibration"] == rejudge(effects["nll_gain"], B.MIN_NLL_GAIN)
    assert parts["regression"] == rejudge(effects["coverage_gain_outside"], B.MIN_COVERAGE_GAIN)
    check_statements(result, ["bayes.mc", "bayes.cheap"])
    mc = result.statements[0].numbers
    assert [mc[k]["verdict"] for k in ("OOD detection", "calibration",
                                       "coverage away from data")] == list(parts.values())
    gold = result.numbers["gold"]["per_seed"]
    corr = [r["methods"]["mc_dropout"]["log_std_corr_with_hmc"] for r in gold]
    assert mc["shape of HMC's uncertainty"]["per_seed"] == pytest.approx(corr)
    cheap = result.statements[1]
    assert cheap.verdict == B.bayes_gold.judge(gold)[1]["verdict"]


def test_effects_match_the_per_seed_numbers(result):
    for seed_row, gain, nll in zip(result.numbers["per_seed"], result.numbers["effects"][
            "auroc_gain"], result.numbers["effects"]["nll_gain"], strict=True):
        det = seed_row["classification"]["detection"]
        by_hand = sum(det[o][B.SCORES[1]] - det[o][B.SCORES[0]] for o in B.OOD_SETS) / 3
        assert gain == pytest.approx(by_hand, abs=1e-12)
        cal = seed_row["classification"]["calibration"]
        assert nll == pytest.approx(cal["deterministic"]["nll"] - cal["mc"]["nll"], abs=1e-12)
        for kind in ("mc", "deterministic"):
            assert 0.0 <= cal[kind]["error"] <= 1.0 and 0.0 <= cal[kind]["ece"] <= 1.0
        for scores in det.values():
            assert all(0.0 <= v <= 1.0 for v in scores.values())


def test_overall_rule_covers_every_combination():
    for combo in itertools.product(VERDICTS, repeat=3):
        got = B._overall(dict(zip(("a", "b", "c"), combo, strict=True)))
        if set(combo) == {"supported"}:
            assert got == "supported"
        elif set(combo) == {"not supported"}:
            assert got == "not supported"
        else:
            assert got == "partly supported"


def test_aurocs_treat_shifted_inputs_as_positives():
    gen = torch.Generator().manual_seed(0)
    inside = {s: torch.rand(50, generator=gen) for s in B.SCORES}
    outside = {s: torch.rand(40, generator=gen) + 0.3 for s in B.SCORES}
    got = B._aurocs(inside, outside)
    for s in B.SCORES:
        labels = [0] * 50 + [1] * 40
        scores = torch.cat([inside[s], outside[s]]).numpy()
        assert got[s] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_scores_leave_the_model_as_it_was():
    x = torch.rand(40, 64)
    y = torch.arange(40) % 4
    model = B._classifier(x, y, 4, B.QUICK, seed=0)
    before = snapshot(model)
    scores = B._scores(B._mc(model, B.QUICK, 0), x)
    assert_same_state(model, before)
    assert set(scores) == set(B.SCORES)
    assert all(s.shape == (40,) and torch.isfinite(s).all() for s in scores.values())
    assert torch.all(scores[B.SCORES[2]] >= -1e-6)  # mutual information is non-negative
    assert torch.all(scores[B.SCORES[1]] + 1e-5 >= scores[B.SCORES[2]])  # MI <= entropy


def test_regression_is_reproducible_and_bands_nest():
    a = B._regression_seed(B.QUICK, seed=3)
    b = B._regression_seed(B.QUICK, seed=3)
    assert a == b
    cov = a["coverage_95"]
    for region in ("inside", "outside"):  # adding the aleatoric term only widens the band
        assert cov["MC epistemic + aleatoric"][region] >= cov["MC epistemic only"][region]
    curve = a["curve"]
    assert all(t >= e for t, e in zip(curve["total_std"], curve["epistemic_std"], strict=True))
