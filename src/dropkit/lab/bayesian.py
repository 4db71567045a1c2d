"""Claim 3: dropout kept on at test time (MC dropout) is approximate Bayesian inference, so its
spread estimates model uncertainty.

Measured on digits and a 1-D regression, always against the deterministic (weight-scaled)
prediction of the *same* trained network, so any gain is what sampling adds:

* uncertainty vs rotation angle of the test digits (MC predictive entropy, mutual information,
  deterministic softmax entropy, error);
* detection of shifted or unseen inputs: AUROC of each score for in-distribution test digits
  (negatives) vs digits rotated by 90 degrees, digits shifted by 2 pixels, and digits of classes
  the network never saw (positives);
* calibration (NLL, ECE) of the MC mean vs the weight-scaled prediction on in-distribution
  test digits;
* a 1-D regression trained on ``x`` in [-1, 1] and evaluated on [-2, 2]: 95% interval coverage
  inside and outside the data, from the MC epistemic band alone, from epistemic + aleatoric,
  and from a deterministic prediction with the same noise level;
* against a gold standard (`dropkit.lab.bayes_gold`: HMC, deep ensemble, last-layer Laplace,
  scaled MAP on a 1-D regression with a gap), on every seed or on the first
  ``gold_seeds`` of them.

The claim is a `ClaimExperiment`: `measure` (one seed: the digits, the regression and, when
the gold standard runs on every seed, the gold comparison), `shared` (the gold comparison
when it runs on the first ``gold_seeds`` seeds only), `judge` and `figures`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from dropkit import metrics
from dropkit.datasets.digits import load_digits, rotate, shift
from dropkit.errors import DropkitValueError, expected
from dropkit.lab import bayes_gold, bayes_vi
from dropkit.lab.base import (
    ClaimExperiment,
    ClaimResult,
    Figure,
    Judged,
    Judgement,
    LabConfig,
    figure_png,
    mean_se,
    run_experiment,
)
from dropkit.lab.base import judge as judge_effects
from dropkit.lab.statements import (
    ALL_OF_RULE,
    Condition,
    Statement,
    all_of,
    disagreement,
    effect_conditions,
    group_summary,
)
from dropkit.lab.train import TrainConfig, mlp, seeded, train
from dropkit.mc.mcdropout import MCDropout
from dropkit.mc.prediction import ClassificationPrediction

ID = "bayesian"
TITLE = "MC dropout as approximate Bayesian inference"
CLAIM = ("Dropout is approximate Bayesian inference: keeping it on at test time (MC dropout) "
         "estimates model uncertainty, so MC predictions detect shifted or unseen inputs and are "
         "better calibrated than the deterministic (weight-scaled) net, and the predictive band "
         "widens away from the data.")

SCORES = ("softmax entropy (deterministic)", "MC predictive entropy", "MC mutual information")


@dataclass(frozen=True)
class BayesianSettings:
    """Every parameter that changes a result of claim 3 (written into the result's config).

    ``gold_seeds``: the gold-standard comparison runs on the first ``gold_seeds`` seeds of the
    run (in `shared`), or on every seed when None (in `measure`, so it spreads over workers).
    """

    # digits: MLP 64-hidden-hidden-10, Adam, MC dropout with `samples` passes
    hidden: int = 256
    p: float = 0.5
    epochs: int = 40
    lr: float = 1e-3  # Adam, both the digits and the regression nets
    batch_size: int = 64
    samples: int = 50
    angles: tuple[int, ...] = (0, 15, 30, 45, 60, 75, 90, 120, 150, 180)
    ood_rotation: int = 90  # degrees: the "rotated" shifted set
    ood_shift: int = 2  # pixels: the "shifted" set
    held_out_from: int = 7  # the unseen-classes net is trained on digits 0..held_out_from-1
    # 1-D regression: train on [-reg_range, reg_range], test on [-reg_test_range, reg_test_range]
    reg_hidden: int = 128
    reg_p: float = 0.1
    reg_n: int = 160
    reg_n_val: int = 40  # held-out points for the noise level
    reg_n_test: int = 640
    reg_epochs: int = 200
    reg_batch_size: int = 32
    reg_noise: float = 0.15
    reg_range: float = 1.0
    reg_test_range: float = 2.0
    reg_grid: int = 161  # points of the plotted curve
    # pre-registered thresholds of the verdict (see `judge`)
    min_auroc_gain: float = 0.01  # AUROC points
    min_nll_gain: float = 0.01  # nats per test digit
    min_coverage_gain: float = 0.05  # fraction of targets outside the data range
    # the gold-standard comparison (its sizes and thresholds) and the seeds it runs on
    gold: bayes_gold.Settings = field(default_factory=bayes_gold.Settings)
    gold_seeds: int | None = None
    # [bayes.vi]: posterior concentration on bayes_gold's regression (its sizes and rate)
    vi: bayes_vi.VISettings = field(default_factory=bayes_vi.VISettings)

    def __post_init__(self) -> None:
        if self.gold_seeds is not None and not (
                isinstance(self.gold_seeds, int) and self.gold_seeds >= 1):
            raise DropkitValueError(expected("gold_seeds", "None (every seed) or an int >= 1",
                                             self.gold_seeds))

    def quick(self) -> BayesianSettings:
        """Tiny sizes for a smoke test; the gold standard on the first two seeds only."""
        return replace(self, hidden=32, epochs=2, samples=8, angles=(0, 45, 90), reg_hidden=32,
                       reg_n=48, reg_n_val=12, reg_n_test=192, reg_epochs=6,
                       gold=self.gold.quick(), gold_seeds=2, vi=self.vi.quick())


SETTINGS = BayesianSettings()


def ood_sets(s: BayesianSettings) -> tuple[str, str, str]:
    """Names of the three shifted/unseen test sets (keys of the detection numbers)."""
    return (f"rotated {s.ood_rotation}°", f"shifted {s.ood_shift} px", "unseen classes")


def _truth(x: torch.Tensor) -> torch.Tensor:
    """The regression's true function."""
    return torch.sin(3.0 * x) + 0.5 * x


# ---------------------------------------------------------------------------------------------
# measure: one seed
# ---------------------------------------------------------------------------------------------


def _classifier(x: torch.Tensor, y: torch.Tensor, n_classes: int, s: BayesianSettings,
                seed: int) -> nn.Module:
    with seeded(seed):
        model = mlp(x.shape[1], [s.hidden, s.hidden], n_classes, p=s.p)
    return train(model, x, y, TrainConfig(epochs=s.epochs, lr=s.lr, batch_size=s.batch_size,
                                          seed=seed))


def _mc(model: nn.Module, s: BayesianSettings, seed: int, **kw: Any) -> MCDropout:
    # Seeded "auto" picks its samples per pass by a fixed rule: reproducible run to run.
    return MCDropout(model, samples=s.samples, seed=seed, progress=False, **kw)


def _class_metrics(pred: ClassificationPrediction, target: torch.Tensor) -> dict[str, float]:
    probs = pred.mean
    return {
        "error": 1.0 - metrics.accuracy(probs, target, from_logits=False),
        "nll": metrics.negative_log_likelihood(probs, target, from_logits=False),
        "ece": metrics.expected_calibration_error(probs, target, from_logits=False),
        "entropy": float(pred.predictive_entropy.mean()),
        "mutual_information": float(pred.mutual_information.mean()),
    }


def _scores(mc: MCDropout, x: torch.Tensor) -> dict[str, torch.Tensor]:
    det, pred = mc.deterministic(x), mc.predict(x)
    return {SCORES[0]: det.predictive_entropy, SCORES[1]: pred.predictive_entropy,
            SCORES[2]: pred.mutual_information}


def _aurocs(inside: dict[str, torch.Tensor], outside: dict[str, torch.Tensor]
            ) -> dict[str, float]:
    """AUROC of each score with the shifted/unseen inputs as positives."""
    out = {}
    for name in SCORES:
        scores = torch.cat([inside[name], outside[name]])
        labels = torch.cat([torch.zeros(len(inside[name])), torch.ones(len(outside[name]))])
        out[name] = metrics.auroc(scores, labels.bool())
    return out


def _by_angle(mc: MCDropout, x_test: torch.Tensor, y_test: torch.Tensor, s: BayesianSettings
              ) -> dict[str, dict[str, list[float]]]:
    """Each metric of the MC mean and of the deterministic net, per rotation angle."""
    by_angle: dict[str, dict[str, list[float]]] = {"mc": {}, "deterministic": {}}
    for angle in s.angles:
        x = rotate(x_test, angle).flatten(1)
        for kind, pred in (("mc", mc.predict(x)), ("deterministic", mc.deterministic(x))):
            for k, v in _class_metrics(pred, y_test).items():
                by_angle[kind].setdefault(k, []).append(v)
    return by_angle


def _classification_seed(s: BayesianSettings, seed: int) -> dict[str, Any]:
    """Digits: uncertainty per angle, detection of shifted/unseen digits, calibration."""
    d = load_digits(seed=seed)
    mc = _mc(_classifier(d.flat_train, d.y_train, 10, s, seed), s, seed)
    by_angle = _by_angle(mc, d.x_test, d.y_test, s)
    rotated, shifted, unseen = ood_sets(s)
    inside = _scores(mc, d.flat_test)
    detection = {
        rotated: _aurocs(inside, _scores(mc, rotate(d.x_test, s.ood_rotation).flatten(1))),
        shifted: _aurocs(inside, _scores(mc, shift(d.x_test, s.ood_shift).flatten(1)))}
    calibration = {kind: {k: by_angle[kind][k][0] for k in ("error", "nll", "ece")}
                   for kind in by_angle}  # angle 0 is the unrotated test set

    seen_train, seen_test = d.y_train < s.held_out_from, d.y_test < s.held_out_from
    partial = _classifier(d.flat_train[seen_train], d.y_train[seen_train], s.held_out_from,
                          s, seed)
    mc_partial = _mc(partial, s, seed)
    detection[unseen] = _aurocs(_scores(mc_partial, d.flat_test[seen_test]),
                                _scores(mc_partial, d.flat_test[~seen_test]))
    return {"by_angle": by_angle, "detection": detection, "calibration": calibration}


def _regression_data(n: int, lo: float, hi: float, noise: float, gen: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    x = lo + (hi - lo) * torch.rand(n, 1, generator=gen)
    return x, _truth(x) + noise * torch.randn(n, 1, generator=gen)


def _regression_fit(s: BayesianSettings, seed: int) -> tuple[dict[str, torch.Tensor], MCDropout,
                                                             float]:
    """The regression's data, its trained MC dropout and the noise variance estimated from
    held-out residuals of the weight-scaled net (not from the true noise)."""
    gen = torch.Generator().manual_seed(seed)
    r, t = s.reg_range, s.reg_test_range
    x, y = _regression_data(s.reg_n, -r, r, s.reg_noise, gen)
    x_val, y_val = _regression_data(s.reg_n_val, -r, r, s.reg_noise, gen)
    x_test, y_test = _regression_data(s.reg_n_test, -t, t, s.reg_noise, gen)
    with seeded(seed):
        model = mlp(1, [s.reg_hidden, s.reg_hidden], 1, p=s.reg_p)
    train(model, x, y, TrainConfig(epochs=s.reg_epochs, lr=s.lr, batch_size=s.reg_batch_size,
                                   loss="mse", seed=seed))
    probe = _mc(model, s, seed, task="regression")
    noise_var = float(((probe.deterministic(x_val).mean - y_val) ** 2).mean())
    mc = _mc(model, s, seed, task="regression", tau=1 / noise_var)
    return {"x": x, "y": y, "x_test": x_test, "y_test": y_test}, mc, noise_var


def _regression_seed(s: BayesianSettings, seed: int) -> dict[str, Any]:
    """1-D regression: 95% coverage inside/outside the data of three bands, and the curve."""
    data, mc, noise_var = _regression_fit(s, seed)
    x_test, y_test = data["x_test"], data["y_test"]
    pred, det = mc.predict(x_test), mc.deterministic(x_test)
    bands = {"MC epistemic only": (pred.mean, pred.epistemic_variance.sqrt()),
             "MC epistemic + aleatoric": (pred.mean, pred.total_variance.sqrt()),
             "deterministic + aleatoric": (det.mean, torch.full_like(det.mean,
                                                                     math.sqrt(noise_var)))}
    inside = x_test.abs() <= s.reg_range
    coverage = {name: {region: metrics.interval_coverage(m[mask], sd[mask], y_test[mask])
                       for region, mask in (("inside", inside), ("outside", ~inside))}
                for name, (m, sd) in bands.items()}
    epi_std = pred.epistemic_variance.sqrt()
    grid = torch.linspace(-s.reg_test_range, s.reg_test_range, s.reg_grid).unsqueeze(1)
    grid_pred = mc.predict(grid)
    return {
        "noise_std_estimated": math.sqrt(noise_var), "noise_std_true": s.reg_noise,
        "coverage_95": coverage,
        "epistemic_std_inside": float(epi_std[inside].mean()),
        "epistemic_std_outside": float(epi_std[~inside].mean()),
        "rmse_inside": metrics.rmse(pred.mean[inside], y_test[inside]),
        "rmse_outside": metrics.rmse(pred.mean[~inside], y_test[~inside]),
        "curve": {"x": grid.squeeze(1).tolist(), "mean": grid_pred.mean.squeeze(1).tolist(),
                  "epistemic_std": grid_pred.epistemic_variance.sqrt().squeeze(1).tolist(),
                  "total_std": grid_pred.total_variance.sqrt().squeeze(1).tolist(),
                  "train_x": data["x"].squeeze(1).tolist(),
                  "train_y": data["y"].squeeze(1).tolist()},
    }


def measure(s: BayesianSettings, seed: int) -> dict[str, Any]:
    """One seed: the digits, the regression and (when ``s.gold_seeds`` is None, i.e. on every
    seed) the gold-standard comparison. Every draw is seeded from ``seed``."""
    row: dict[str, Any] = {"seed": seed, "classification": _classification_seed(s, seed),
                           "regression": _regression_seed(s, seed),
                           "vi": bayes_vi.measure(s.vi, seed)}
    if s.gold_seeds is None:
        row["gold"] = bayes_gold.measure(s.gold, seed)
    return row


def shared(s: BayesianSettings, seeds: tuple[int, ...]) -> dict[str, Any]:
    """The gold-standard comparison on the first ``s.gold_seeds`` seeds (nothing when it runs
    on every seed: `measure` does it then)."""
    if s.gold_seeds is None:
        return {}
    return {"gold": [bayes_gold.measure(s.gold, seed) for seed in seeds[:s.gold_seeds]]}


def gold_rows(per_seed: list[dict[str, Any]], shared: dict[str, Any]) -> list[dict[str, Any]]:
    """The gold comparison's per-seed rows, wherever they were measured."""
    return shared["gold"] if "gold" in shared else [r["gold"] for r in per_seed]


# ---------------------------------------------------------------------------------------------
# judge: statements and numbers from the measurements, no training
# ---------------------------------------------------------------------------------------------


def effects(s: BayesianSettings, per_seed: list[dict[str, Any]]) -> dict[str, list[float]]:
    """The three per-seed effects of the first edition (positive favours the claim)."""
    det, mc_ent = SCORES[0], SCORES[1]
    cls = [r["classification"] for r in per_seed]
    cov = [r["regression"]["coverage_95"] for r in per_seed]
    return {
        "auroc_gain": [float(np.mean([c["detection"][o][mc_ent] - c["detection"][o][det]
                                      for o in ood_sets(s)])) for c in cls],
        "nll_gain": [c["calibration"]["deterministic"]["nll"] - c["calibration"]["mc"]["nll"]
                     for c in cls],
        "coverage_gain_outside": [c["MC epistemic + aleatoric"]["outside"]
                                  - c["deterministic + aleatoric"]["outside"] for c in cov],
    }


def parts(s: BayesianSettings, eff: dict[str, list[float]]) -> dict[str, Judgement]:
    """The first edition's three parts, each judged by the shared effect rule."""
    return {
        "detection": judge_effects(
            eff["auroc_gain"], min_effect=s.min_auroc_gain,
            what="AUROC(MC predictive entropy) - AUROC(deterministic softmax entropy), averaged "
                 "over the three shifted/unseen sets"),
        "calibration": judge_effects(
            eff["nll_gain"], min_effect=s.min_nll_gain,
            what="NLL(weight scaling) - NLL(MC mean) on in-distribution test digits, nats"),
        "regression": judge_effects(
            eff["coverage_gain_outside"], min_effect=s.min_coverage_gain,
            what="95%-interval coverage outside the training range, MC (epistemic + "
                 "aleatoric) - deterministic (aleatoric only)"),
    }


def _mc_statement(s: BayesianSettings, parts: dict[str, Judgement],
                  eff: dict[str, list[float]], gold: list[dict[str, Any]]) -> Statement:
    """[bayes.mc]: four parts (detection, calibration, coverage, HMC's shape), all of them."""
    gold_mc = bayes_gold.judge(gold, s.gold)[0]
    corr = [r["methods"]["mc_dropout"]["log_std_corr_with_hmc"] for r in gold]
    named = [("OOD detection", parts["detection"].verdict,
              *effect_conditions(eff["auroc_gain"], s.min_auroc_gain)[1:]),
             ("calibration", parts["calibration"].verdict,
              *effect_conditions(eff["nll_gain"], s.min_nll_gain, "nats")[1:]),
             ("coverage away from data", parts["regression"].verdict,
              *effect_conditions(eff["coverage_gain_outside"], s.min_coverage_gain)[1:]),
             ("shape of HMC's uncertainty", gold_mc["verdict"],
              *effect_conditions(corr, s.gold.min_log_std_corr)[1:])]
    return Statement(
        id="bayes.mc", group=ID, text="Keeping dropout on at test time and averaging the passes "
        "estimates model uncertainty.",
        verdict=all_of([(n, v) for n, v, _, _ in named]),
        criterion=_mc_criterion(s),
        conditions=[Condition(f"({n}) {c.rule}", c.measured, c.holds)
                    for n, _, cs, _ in named for c in cs],
        numbers={n: {"verdict": v, **nums} for n, v, _, nums in named}
        | {"hmc_others_mean_corr": gold_mc["numbers"]["others_mean_corr"]})


def _mc_criterion(s: BayesianSettings) -> str:
    return (f"four parts, each by the shared effect rule (supported if m - 2 se > the "
            f"threshold; partly supported if m > 0 and m + 2 se > it): (OOD detection) "
            f"AUROC of the MC predictive entropy minus the deterministic softmax "
            f"entropy's, mean over three shifted/unseen sets, threshold "
            f"{s.min_auroc_gain:g}; (calibration) in-distribution NLL of weight scaling "
            f"minus the MC mean's, threshold {s.min_nll_gain:g} nats; (coverage away from "
            f"data) 95% coverage outside the training range, MC (epistemic + aleatoric) "
            f"minus deterministic (aleatoric only), threshold {s.min_coverage_gain:g}; "
            f"(shape of HMC's uncertainty) Pearson correlation over the grid of log MC "
            f"dropout epistemic std with log HMC (NUTS) epistemic std, threshold "
            f"{s.gold.min_log_std_corr:g}. Statement: " + ALL_OF_RULE)


def _cheap_statement(g: bayes_gold.Settings, gold: list[dict[str, Any]]) -> Statement:
    """[bayes.cheap]: `bayes_gold.judge`'s rule, with its conditions spelled out."""
    gold_cheap = bayes_gold.judge(gold, g)[1]
    n = gold_cheap["numbers"]
    gain_v, gain_c, gain_n = effect_conditions(n["w2_gain_over_scaled_map"], g.min_w2_gain,
                                               "y units")
    cost = n["mean_cost_s"]
    return Statement(
        id="bayes.cheap", group=ID, text="MC dropout is a cheap way to get uncertainty without "
        "training a Bayesian network.", verdict=gold_cheap["verdict"],
        criterion=_cheap_criterion(g),
        conditions=[*[Condition(f"(a) {c.rule}", c.measured, c.holds) for c in gain_c],
                    Condition(f"(b) cost <= {g.max_cost_vs_ensemble:g} x ensemble's",
                              f"{cost['mc_dropout']:.3g} s vs {cost['ensemble']:.3g} s",
                              cost["mc_dropout"] <= g.max_cost_vs_ensemble * cost["ensemble"]),
                    Condition(f"(b) cost <= {g.max_cost_vs_hmc:g} x HMC's",
                              f"{cost['mc_dropout']:.3g} s vs {cost['hmc']:.3g} s",
                              cost["mc_dropout"] <= g.max_cost_vs_hmc * cost["hmc"]),
                    Condition("(c) no method that costs no more is clearly closer to HMC",
                              "closer and no dearer: " + (", ".join(n["dominated_by"]) or
                                                          "none"), not n["dominated_by"])],
        numbers={**n, "w2_gain": gain_n, "gain_verdict": gain_v})


def _cheap_criterion(g: bayes_gold.Settings) -> str:
    return (f"against the HMC (NUTS) gold-standard predictive of a 1-D regression with a "
            f"gap, same data, network and prior for every method: supported if (a) MC "
            f"dropout is closer to HMC away from the data than the MAP net with a fitted "
            f"noise scale (W2 gain, shared effect rule, threshold "
            f"{g.min_w2_gain:g} y units: supported), (b) it is cheap: mean "
            f"train + predict CPU seconds <= {g.max_cost_vs_ensemble:g} x the "
            f"5-member deep ensemble's and <= {g.max_cost_vs_hmc:g} x HMC's, and "
            f"(c) no method that costs no more (ensemble, last-layer Laplace) is closer "
            f"to HMC away from the data by more than 2 se; partly supported if (a) is at "
            f"least partly supported and (b) holds, but not all three; otherwise not "
            f"supported")


def _first_edition(parts: dict[str, Judgement]) -> tuple[str, str]:
    """The first edition's verdict (all three parts) and its rule with each part's numbers."""
    verdict = all_of([(k, j.verdict) for k, j in parts.items()])
    rule = ("Three parts, each judged separately; overall supported if all three are "
            "supported, not supported if all three are not supported, else partly "
            "supported. " + " | ".join(f"{k} ({j.verdict}): {j.criterion}"
                                       for k, j in parts.items()))
    return verdict, rule


def _agg(values: list[float]) -> dict[str, float]:
    m, se = mean_se(values)
    return {"mean": m, "se": se}


def summary(s: BayesianSettings, per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and se over seeds of every first-edition number the report shows."""
    cls = [r["classification"] for r in per_seed]
    cov = [r["regression"]["coverage_95"] for r in per_seed]
    return {
        "auroc": {o: {sc: _agg([c["detection"][o][sc] for c in cls]) for sc in SCORES}
                  for o in ood_sets(s)},
        "calibration": {k: {m: _agg([c["calibration"][k][m] for c in cls])
                            for m in ("error", "nll", "ece")} for k in ("mc", "deterministic")},
        "coverage_95": {b: {reg: _agg([c[b][reg] for c in cov]) for reg in ("inside", "outside")}
                        for b in cov[0]},
        "nll_rotated_30_or_more": {
            kind: _agg([float(np.mean([v for a, v in zip(s.angles, c["by_angle"][kind]["nll"],
                                                         strict=True) if a >= 30]))
                        for c in cls]) for kind in ("mc", "deterministic")},
        "epistemic_std_ratio_outside_inside": _agg(
            [r["regression"]["epistemic_std_outside"] / r["regression"]["epistemic_std_inside"]
             for r in per_seed]),
    }


def _gold_key(gold: list[dict[str, Any]]) -> str:
    summ = bayes_gold.summary(gold)
    away = {m: sum(summ[m][r]["w2"]["mean"] for r in bayes_gold.AWAY) / len(bayes_gold.AWAY)
            for m in bayes_gold.METHODS}
    return ("W2 away from the data " + ", ".join(f"{m} {v:.3f}" for m, v in away.items())
            + "; cost (s) " + ", ".join(f"{m} {summ[m]['cost_s']['mean']:.2g}"
                                       for m in (*bayes_gold.METHODS, "hmc")))


def _key_number(detection_gain: float, summ: dict[str, Any], gold: list[dict[str, Any]],
                split: str) -> str:
    cal, cov = summ["calibration"], summ["coverage_95"]
    rot = summ["nll_rotated_30_or_more"]
    return (f"AUROC gain of MC entropy over softmax entropy {detection_gain:+.3f}; "
            f"in-distribution NLL {cal['deterministic']['nll']['mean']:.3f} -> "
            f"{cal['mc']['nll']['mean']:.3f} (rotated >= 30°: "
            f"{rot['deterministic']['mean']:.2f} -> {rot['mc']['mean']:.2f}); "
            f"coverage outside data "
            f"{cov['deterministic + aleatoric']['outside']['mean']:.2f} -> "
            f"{cov['MC epistemic + aleatoric']['outside']['mean']:.2f}"
            + f"; vs HMC: {_gold_key(gold)}" + (f". {split}" if split else ""))


def _setup(s: BayesianSettings) -> str:
    r, t = s.reg_range, s.reg_test_range
    return (f"Digits (sklearn, 8x8, 70/30 split per seed): MLP 64-{s.hidden}-"
            f"{s.hidden}-10, dropout p={s.p} after each hidden layer, Adam lr {s.lr:g}, "
            f"{s.epochs} epochs; "
            f"MC dropout with S={s.samples}. Unseen classes: the same net trained on digits "
            f"0-{s.held_out_from - 1} only. Regression: y = sin(3x) + x/2 + N(0, "
            f"{s.reg_noise}^2), {s.reg_n} points on [{-r:g}, {r:g}], MLP 1-{s.reg_hidden}-"
            f"{s.reg_hidden}-1 with p={s.reg_p}, {s.reg_epochs} epochs of MSE; noise "
            f"variance estimated from held-out residuals; tested on [{-t:g}, {t:g}]."
            " Gold standard: " + bayes_gold.describe(s.gold))


CAVEATS = (
    "The calibration part is judged on in-distribution test digits (chosen before the "
    "runs); under rotation the MC mean's NLL is much lower than weight scaling's (see "
    "nll_rotated_30_or_more), which this verdict does not count.",
    "Small data and small MLPs; the detection task (rotated/shifted 8x8 digits) is easy, "
    "so a strong deterministic baseline leaves little room for a gain.",
    "The deterministic baseline is the same network, so the comparison isolates sampling, "
    "not a different model; no temperature scaling or deep ensemble is compared.",
    "Only one dropout rate (classification p=0.5, regression p=0.1) and no tuning of the "
    "weight decay / prior length-scale that Gal & Ghahramani's derivation relates to the "
    "predictive variance.",
    "The regression band outside the data reflects ReLU networks' extrapolation; coverage "
    "out there depends strongly on the true function's behaviour.",
    "[bayes.vi] is a derivation (Gal & Ghahramani 2016); the lab does not re-check the "
    "algebra but one consequence of it, posterior concentration, at one fixed dropout rate "
    "on one small regression. Tuning p with the data (as concrete dropout does) is a "
    "different method and is not tested.",
    "[bayes.cheap]'s costs are CPU seconds of this process: they vary with the machine and "
    "its load, so that verdict can change between runs on a busy machine.",
)


def judge(s: BayesianSettings, per_seed: list[dict[str, Any]], shared: dict[str, Any]
          ) -> Judged:
    """[bayes.vi], [bayes.mc] and [bayes.cheap] from the measurements; the claim's verdict
    follows from them by the group rule (the first edition's three-part verdict is kept in the
    criterion)."""
    gold = gold_rows(per_seed, shared)
    eff = effects(s, per_seed)
    judged_parts = parts(s, eff)
    vi_rows = [r["vi"] for r in per_seed]
    statements = [bayes_vi.statement(s.vi, vi_rows), _mc_statement(s, judged_parts, eff, gold),
                  _cheap_statement(s.gold, gold)]
    first_verdict, first_rule = _first_edition(judged_parts)
    _, criterion = group_summary(statements)
    criterion += f" (The first edition's rule, verdict {first_verdict}: {first_rule})"
    summ = summary(s, per_seed)
    numbers = {
        "effects": eff, "part_verdicts": {k: j.verdict for k, j in judged_parts.items()},
        "summary": summ, "angles": list(s.angles),
        "per_seed": [{k: r[k] for k in ("seed", "classification", "regression")}
                     for r in per_seed],
        "gold": {"seeds": [r["seed"] for r in gold], "summary": bayes_gold.summary(gold),
                 "per_seed": [{k: v for k, v in r.items() if k != "curve"} for r in gold],
                 "curve_first_seed": gold[0]["curve"]},
        "vi": {"per_seed": vi_rows},
    }
    key = _key_number(judged_parts["detection"].mean, summ, gold, disagreement(statements))
    return Judged(statements=statements, criterion=criterion, key_number=key, numbers=numbers,
                  setup=_setup(s), caveats=list(CAVEATS))


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------


def _spread(values: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(values, dtype=float)  # (seeds, points)
    return a.mean(0), a.std(0)


def _band(ax: Any, xs: np.ndarray, rows: list[list[float]], label: str, color: str,
          style: str) -> None:
    """Mean over seeds as a line, ±1 sd across seeds as a band."""
    m, sd = _spread(rows)
    ax.plot(xs, m, style, color=color, label=label, marker="o", ms=3)
    ax.fill_between(xs, m - sd, m + sd, color=color, alpha=0.2)


def _rotation_figure(s: BayesianSettings, per_seed: list[dict[str, Any]]) -> Figure:
    import matplotlib.pyplot as plt

    angles = np.asarray(s.angles)
    rows = [r["classification"]["by_angle"] for r in per_seed]
    # constrained layout: the third panel's y label ran into the second
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    for kind, key, label, color, style in (
            ("mc", "entropy", "MC predictive entropy", "C0", "-"),
            ("mc", "mutual_information", "MC mutual information", "C1", "-"),
            ("deterministic", "entropy", "softmax entropy (deterministic)", "C2", "--")):
        _band(ax1, angles, [b[kind][key] for b in rows], label, color, style)
    ax1.set(title="Uncertainty vs rotation of test digits", xlabel="rotation angle (degrees)",
            ylabel="mean uncertainty (nats)")
    ax1.legend(fontsize=8)
    for ax, key, ylabel, title in ((ax2, "error", "test error (fraction)", "Test error"),
                                   (ax3, "nll", "test NLL (nats)", "Test NLL")):
        for kind, label, color, style in (("mc", "MC mean", "C0", "-"),
                                          ("deterministic", "deterministic (weight scaling)",
                                           "C2", "--")):
            _band(ax, angles, [b[kind][key] for b in rows], label, color, style)
        ax.set(title=f"{title} vs rotation", xlabel="rotation angle (degrees)", ylabel=ylabel)
        ax.legend(fontsize=8)
    return Figure("bayesian_rotation", figure_png(fig),
                  f"Mean over {len(per_seed)} seeds, band ±1 sd across seeds. MC dropout "
                  f"with S={s.samples} samples vs the deterministic (weight-scaled) net.")


def _detection_figure(s: BayesianSettings, per_seed: list[dict[str, Any]]) -> Figure:
    import matplotlib.pyplot as plt

    sets = ood_sets(s)
    cls = [r["classification"] for r in per_seed]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.26
    for j, score in enumerate(SCORES):
        m, sd = _spread([[c["detection"][o][score] for o in sets] for c in cls])
        ax1.bar(np.arange(len(sets)) + (j - 1) * width, m, width, yerr=sd, capsize=3,
                label=score)
    ax1.set_xticks(np.arange(len(sets)), sets)
    ax1.axhline(0.5, color="k", lw=0.8, ls=":", label="chance (0.5)")
    ax1.set(title="Detecting shifted / unseen digits", ylabel="AUROC (0.5 = chance)",
            ylim=(0.0, 1.35))
    ax1.legend(fontsize=7, loc="upper center", ncol=2)
    for j, kind in enumerate(("deterministic", "mc")):
        m, sd = _spread([[c["calibration"][kind][k] for k in ("nll", "ece", "error")]
                         for c in cls])
        ax2.bar(np.arange(3) + (j - 0.5) * 0.38, m, 0.38, yerr=sd, capsize=3,
                label="deterministic (weight scaling)" if kind == "deterministic" else "MC mean")
    ax2.set_xticks(np.arange(3), ["NLL (nats)", "ECE (fraction)", "error (fraction)"])
    ax2.set(title="Calibration on in-distribution test digits", ylabel="value (see tick unit)")
    ax2.legend(fontsize=8)
    return Figure("bayesian_detection_calibration", figure_png(fig),
                  f"Left: AUROC of each uncertainty score, in-distribution test digits vs "
                  f"shifted or unseen ones (unseen: net trained on digits "
                  f"0-{s.held_out_from - 1}, tested on {s.held_out_from}-9). Right: NLL, ECE "
                  f"(15 bins) and error. Bars: mean, whiskers ±1 sd over seeds.")


def _regression_figure(s: BayesianSettings, row: dict[str, Any]) -> Figure:
    import matplotlib.pyplot as plt

    curve = row["regression"]["curve"]
    x, mean = np.asarray(curve["x"]), np.asarray(curve["mean"])
    r, t = s.reg_range, s.reg_test_range
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.axvspan(-t, -r, color="0.92")
    ax.axvspan(r, t, color="0.92", label="outside the training data")
    for key, label, alpha in (("total_std", "±1.96 sd, epistemic + aleatoric", 0.2),
                              ("epistemic_std", "±1.96 sd, epistemic only", 0.35)):
        sd = 1.96 * np.asarray(curve[key])
        ax.fill_between(x, mean - sd, mean + sd, alpha=alpha, color="C0", label=label)
    ax.plot(x, mean, color="C0", label="MC mean")
    ax.plot(x, _truth(torch.tensor(x)).numpy(), "k--", lw=1, label="true function")
    ax.scatter(curve["train_x"], curve["train_y"], s=6, color="C3", label="training data")
    ax.set(title=f"1-D regression, MC dropout (seed {row['seed']})",
           xlabel="x (input units)", ylabel="y (output units)", xlim=(-t, t))
    ax.legend(fontsize=8, loc="upper left")
    return Figure("bayesian_regression", figure_png(fig),
                  "Predictive band of MC dropout inside and outside the training range, "
                  "with and without the aleatoric (noise) term estimated on held-out data.")


GOLD_FIGURES = (
    ("bayesian_gold_predictive", "Predictive band (±2 sd) of each method over the HMC (NUTS) "
     "gold standard's, first seed; green: where the training data are."),
    ("bayesian_gold_distance_cost", "Left: 2-Wasserstein distance of each method's predictive "
     "to HMC's, per region, with HMC's own Monte Carlo error (split-half W2). Right: distance "
     "away from the data against the measured cost (train + predict CPU seconds)."),
)


def figures(s: BayesianSettings, per_seed: list[dict[str, Any]], shared: dict[str, Any]
            ) -> list[Figure]:
    """Rotation curves, detection and calibration bars, the regression band (first seed), and
    the two figures of the gold comparison."""
    import matplotlib

    matplotlib.use("Agg")
    figs = [_rotation_figure(s, per_seed), _detection_figure(s, per_seed),
            _regression_figure(s, per_seed[0]), bayes_vi.figure([r["vi"] for r in per_seed])]
    gold = bayes_gold.figures(gold_rows(per_seed, shared), s.gold)
    return figs + [Figure(name, figure_png(fig), caption)
                   for (name, caption), fig in zip(GOLD_FIGURES, gold, strict=True)]


EXPERIMENT = ClaimExperiment(id=ID, title=TITLE, claim=CLAIM, settings=SETTINGS,
                             measure=measure, judge=judge, figures=figures, shared=shared)


def run(cfg: LabConfig) -> ClaimResult:
    """Run claim 3 here, seed after seed, and judge it (`EXPERIMENT`)."""
    return run_experiment(EXPERIMENT, cfg)
