"""Claim 3 (MC dropout as Bayesian inference): its four steps, checked on values.

`measure` is pure (same numbers in any order, caller's RNG untouched), the gold comparison
gives the same numbers from `shared` or from `measure`, `judge` recomputes by hand from
hand-made measurements, and the assembled result re-judges from its own numbers.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from dropkit.errors import DropkitValueError
from dropkit.lab import bayes_gold as G
from dropkit.lab import bayes_vi
from dropkit.lab import bayesian as B
from dropkit.lab.base import LabConfig, assemble
from tests.lab_claim_checks import check_claim, check_statements, verdict_by_hand
from tests.zoo.small import assert_same_state, snapshot

pytest.importorskip("pyro")  # the gold comparison needs pyro-ppl (a dev dependency)

S = B.SETTINGS.quick()
SEEDS = (0, 1, 2)  # quick: the gold comparison runs on the first two only
TIMING = re.compile(r"(_s|seconds)$")


@pytest.fixture(scope="module")
def measured():
    rng_before = torch.get_rng_state()
    rows = {seed: B.measure(S, seed) for seed in (1, 0)}  # seed 1 first: order must not matter
    shared = B.shared(S, SEEDS)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's stream is untouched
    return [rows[0], rows[1]], shared


def _effect_verdict(effects: list[float], t: float) -> str:
    """The shared effect rule written out with numpy (sample sd / sqrt(n))."""
    m = float(np.mean(effects))
    se = float(np.std(effects, ddof=1) / math.sqrt(len(effects))) if len(effects) > 1 else 0.0
    if m - 2 * se > t:
        return "supported"
    return "partly supported" if m > 0 and m + 2 * se > t else "not supported"


def _without_timings(obj):
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if not TIMING.search(k)}
    return obj


# ---------------------------------------------------------------------------------------------
# settings and the measuring steps
# ---------------------------------------------------------------------------------------------


def test_quick_keeps_what_is_not_a_size():
    custom = dataclasses.replace(B.SETTINGS, min_nll_gain=0.5, reg_noise=0.3,
                                 gold=dataclasses.replace(G.Settings(), min_w2_gain=0.1))
    q = custom.quick()
    assert (q.min_nll_gain, q.reg_noise, q.gold.min_w2_gain) == (0.5, 0.3, 0.1)
    assert (q.epochs, q.gold.steps, q.gold_seeds) == (2, 100, 2)
    assert B.SETTINGS.gold_seeds is None  # full size: the gold comparison on every seed


def test_gold_seeds_must_be_none_or_positive():
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(DropkitValueError, match="gold_seeds"):
            dataclasses.replace(B.SETTINGS, gold_seeds=bad)


def test_measure_is_pure_and_gold_is_the_same_from_shared_or_measure(measured):
    """Seed 0 again, after seeds 1, 0 and the shared gold ran in this process, with the gold
    comparison on every seed (so in `measure`): the same numbers, timings aside."""
    per_seed, shared = measured
    assert [r["seed"] for r in shared["gold"]] == [0, 1]  # the first gold_seeds of SEEDS
    every = dataclasses.replace(S, gold_seeds=None)
    assert B.shared(every, SEEDS) == {}
    row = B.measure(every, 0)
    assert {k: v for k, v in row.items() if k != "gold"} == per_seed[0]
    assert per_seed[0] != per_seed[1]
    assert _without_timings(row["gold"]) == _without_timings(shared["gold"][0])
    assert B.gold_rows([row], {}) == [row["gold"]]


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
    model = B._classifier(x, y, 4, S, seed=0)
    before = snapshot(model)
    scores = B._scores(B._mc(model, S, 0), x)
    assert_same_state(model, before)
    assert all(s.shape == (40,) and torch.isfinite(s).all() for s in scores.values())
    assert torch.all(scores[B.SCORES[2]] >= -1e-6)  # mutual information is non-negative
    assert torch.all(scores[B.SCORES[1]] + 1e-5 >= scores[B.SCORES[2]])  # MI <= entropy


def test_regression_bands_nest(measured):
    reg = measured[0][0]["regression"]
    cov = reg["coverage_95"]
    for region in ("inside", "outside"):  # adding the aleatoric term only widens the band
        assert cov["MC epistemic + aleatoric"][region] >= cov["MC epistemic only"][region]
    curve = reg["curve"]
    assert all(t >= e for t, e in zip(curve["total_std"], curve["epistemic_std"], strict=True))
    assert len(curve["x"]) == S.reg_grid and len(curve["train_x"]) == S.reg_n


# ---------------------------------------------------------------------------------------------
# judge: by hand, from measured and from hand-made numbers
# ---------------------------------------------------------------------------------------------


def test_effects_and_summary_by_hand(measured):
    per_seed, shared = measured
    j = B.judge(S, per_seed, shared)
    rot, sh, unseen = "rotated 90°", "shifted 2 px", "unseen classes"
    for row, gain, nll, cov in zip(per_seed, j.numbers["effects"]["auroc_gain"],
                                   j.numbers["effects"]["nll_gain"],
                                   j.numbers["effects"]["coverage_gain_outside"], strict=True):
        det, cal = row["classification"]["detection"], row["classification"]["calibration"]
        by_hand = sum(det[o][B.SCORES[1]] - det[o][B.SCORES[0]] for o in (rot, sh, unseen)) / 3
        assert gain == pytest.approx(by_hand, abs=1e-12)
        assert nll == pytest.approx(cal["deterministic"]["nll"] - cal["mc"]["nll"], abs=1e-12)
        c = row["regression"]["coverage_95"]
        assert cov == c["MC epistemic + aleatoric"]["outside"] - c["deterministic + aleatoric"][
            "outside"]
    for part, key, t in (("detection", "auroc_gain", S.min_auroc_gain),
                         ("calibration", "nll_gain", S.min_nll_gain),
                         ("regression", "coverage_gain_outside", S.min_coverage_gain)):
        assert j.numbers["part_verdicts"][part] == _effect_verdict(j.numbers["effects"][key], t)
    rotated = j.numbers["summary"]["nll_rotated_30_or_more"]["mc"]["mean"]
    assert S.angles == (0, 45, 90)  # angles 45 and 90 are the ">= 30" ones
    assert rotated == pytest.approx(np.mean([np.mean(r["classification"]["by_angle"]["mc"][
        "nll"][1:]) for r in per_seed]), abs=1e-12)
    assert j.numbers["gold"]["seeds"] == [0, 1]


def _hand_made(measured, *, gain: float, corr: float, mc_cost: float):
    """The measured rows with every judged effect set by hand: each seed's AUROC and NLL
    gains are ``gain``, its coverage gain ``gain`` minus a small spread, MC dropout's log-std
    correlation with HMC ``corr`` (plus a spread), its cost ``mc_cost`` (ensemble 5 s,
    Laplace and scaled MAP 2 s, HMC 100 s) and its W2 to HMC away from the data the smallest."""
    per_seed, shared = copy.deepcopy(measured)
    for k, row in enumerate(per_seed):
        jitter = 0.001 * k
        cls = row["classification"]
        for scores in cls["detection"].values():
            scores[B.SCORES[1]] = scores[B.SCORES[0]] + gain
        cls["calibration"]["deterministic"]["nll"] = cls["calibration"]["mc"]["nll"] + gain
        cov = row["regression"]["coverage_95"]
        cov["MC epistemic + aleatoric"]["outside"] = cov["deterministic + aleatoric"][
            "outside"] + gain - jitter
        # [bayes.vi] concentrating like a posterior: supported
        row["vi"]["mc_dropout_slope"], row["vi"]["reference_slope"] = -1.0 - jitter, -1.0
    costs = {"mc_dropout": mc_cost, "ensemble": 5.0, "laplace": 2.0, "scaled_map": 2.0}
    for k, g in enumerate(shared["gold"]):
        g["hmc"]["cost_s"] = 100.0
        for m, method in g["methods"].items():
            method["cost_s"] = costs[m]
            away = {"mc_dropout": 0.05, "ensemble": 0.06, "laplace": 0.07, "scaled_map": 0.2}
            for r in G.AWAY:
                method["regions"][r]["w2"] = away[m] + 0.001 * k
        g["methods"]["mc_dropout"]["log_std_corr_with_hmc"] = corr + 0.01 * k
    return per_seed, shared


@pytest.mark.parametrize(("gain", "corr", "mc_cost", "mc", "cheap"), [
    (0.2, 0.9, 1.0, "supported", "supported"),
    (0.2, 0.1, 1.0, "partly supported", "supported"),  # HMC's shape not matched
    (-0.2, -0.5, 1.0, "not supported", "supported"),
    (0.2, 0.9, 4.0, "supported", "not supported"),  # 4 s > half the ensemble's 5 s
])
def test_judge_on_hand_made_numbers(measured, gain, corr, mc_cost, mc, cheap):
    per_seed, shared = _hand_made(measured, gain=gain, corr=corr, mc_cost=mc_cost)
    j = B.judge(S, per_seed, shared)
    assert [s.verdict for s in j.statements] == ["supported", mc, cheap]
    assert ("The statements disagree" in j.key_number) == (mc != cheap)
    assert f"{gain:+.3f}" in j.key_number  # the mean AUROC gain (no spread in detection)
    first = verdict_by_hand([_effect_verdict([gain] * len(per_seed), 0.01)] * 3)
    assert f"The first edition's rule, verdict {first}" in j.criterion


def test_assembled_result_rejudges_from_its_numbers(measured):
    per_seed, shared = measured
    cfg = LabConfig(quick=True, seeds=SEEDS[:2], progress=False)
    result = assemble(B.EXPERIMENT, cfg, per_seed, shared, seconds=1.0)
    check_claim(result, cfg, "bayesian")
    check_statements(result, ["bayes.vi", "bayes.mc", "bayes.cheap"])
    assert result.config["gold_seeds"] == 2 and result.config["quick"] is True
    assert result.config["gold"]["steps"] == S.gold.steps
    vi = result.statements[0]
    slopes = [r["vi"]["mc_dropout_slope"] for r in per_seed]
    assert vi.numbers["mc_dropout_slope"]["mean"] == pytest.approx(np.mean(slopes))
    assert vi.verdict == bayes_vi.statement(S.vi, [r["vi"] for r in per_seed]).verdict
    mc = result.statements[1].numbers
    corr = [r["methods"]["mc_dropout"]["log_std_corr_with_hmc"] for r in shared["gold"]]
    assert mc["shape of HMC's uncertainty"]["per_seed"] == corr
    assert result.statements[2].verdict == G.judge(shared["gold"], S.gold)[1]["verdict"]
