"""Claim 6: dropout and BatchNorm interact badly through a train/test variance shift (Li et al.,
CVPR 2019, "Understanding the Disharmony between Dropout and Batch Normalization by Variance
Shift"), so where dropout sits relative to BatchNorm matters.

While training, a BatchNorm layer downstream of dropout accumulates the variance of its input
*with* dropout's noise; at test, dropout is off and the input variance is different, so the
layer normalizes with the wrong scale. Measured on digits with MLPs of three
Linear-BatchNorm-ReLU blocks and a linear head, with dropout at one of these places:

* ``act-drop-linear-bn``: after each ReLU, so it feeds the next Linear, which feeds BatchNorm
  (the usual "after the activation, before the next linear layer");
* ``input-drop-linear-bn``: on the input features only, feeding the first Linear -> BatchNorm;
* ``linear-drop-bn``: between each Linear and its BatchNorm (dropout feeds BatchNorm directly);
* ``after-last-bn``: once, after the last block, before the head (no BatchNorm downstream);
* ``none``: no dropout (the baseline for the shift that training alone leaves).

Dropout between BatchNorm and ReLU is not a separate case: ``relu(m x / (1 - p)) =
m relu(x) / (1 - p)`` for a 0/1 mask, so BatchNorm-Dropout-ReLU is the same function, with the
same masks, as BatchNorm-ReLU-Dropout (``act-drop-linear-bn``); a test checks it.

For each rate and width: the variance shift of every BatchNorm layer (median over channels of
running variance / variance of its inputs on the test set with everything in eval, from
`dropkit.diagnose.variance_shift`), test error, and test error after re-estimating BatchNorm's
statistics on the training inputs with dropout off (`dropkit.diagnose.recalibrate_bn`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from dropkit import metrics
from dropkit.datasets.digits import load_digits
from dropkit.diagnose import recalibrate_bn, variance_shift
from dropkit.lab import config_survey
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
from dropkit.lab.base import judge as base_judge
from dropkit.lab.statements import (
    ALL_OF_RULE,
    Condition,
    Statement,
    all_of,
    disagreement,
    effect_conditions,
    effect_statement,
    group_summary,
)
from dropkit.lab.survey_claims import survey_claims
from dropkit.lab.train import TrainConfig, seeded, train
from dropkit.report.numbers import direction, magnitude

ID = "batchnorm"
TITLE = "Dropout and BatchNorm: the variance shift"
CLAIM = ("Dropout interacts badly with BatchNorm through a train/test variance shift: a "
         "BatchNorm downstream of dropout keeps a running variance that does not match what it "
         "sees at test time, which costs accuracy; so dropout should go after the last "
         "BatchNorm (or BatchNorm statistics be re-estimated with dropout off).")

PLACEMENTS = {
    "none": "no dropout",
    "act-drop-linear-bn": "after each ReLU (feeds Linear -> BatchNorm of the next block)",
    "input-drop-linear-bn": "on the inputs only (feeds the first Linear -> BatchNorm)",
    "linear-drop-bn": "between each Linear and its BatchNorm (feeds BatchNorm directly)",
    "after-last-bn": "once, after the last BatchNorm block, before the head",
}
# Placements where some BatchNorm sees dropout's noise while training.
BEFORE_BN = ("input-drop-linear-bn", "act-drop-linear-bn", "linear-drop-bn")


@dataclass(frozen=True)
class BatchNormSettings:
    """Every parameter that changes the claim's numbers (the full run; `quick` shrinks it).

    ``reference_p`` is the rate the statements are judged at (the largest of ``ps`` when it
    is not among them); the thresholds are those of the statements' rules.
    """

    blocks: int = 3
    widths: tuple[int, ...] = (32, 256)
    ps: tuple[float, ...] = (0.1, 0.3, 0.5)
    epochs: int = 15
    batch_size: int = 64
    lr: float = 1e-3  # Adam's
    test_fraction: float = 0.3  # of the digits, split at random per seed
    recalibration_batch: int = 256  # rows per forward pass when re-estimating BatchNorm
    reference_p: float = 0.5
    # [bn.shift]: a 10% variance mismatch beyond the no-dropout baseline
    min_log_shift: float = math.log(1.1)
    min_recalibration_gain: float = 0.005  # [bn.harm]: half a percentage point of accuracy
    # [bn.recipe]/[bn.harm]: "costs nothing" = at most 0.5 pp more error
    max_recipe_cost: float = 0.005
    smoke_test: bool = False  # set by `quick`: also selects the configuration survey's size

    def quick(self) -> BatchNormSettings:
        """Two narrow blocks, one rate, one epoch, and the survey's quick size."""
        return replace(self, blocks=2, widths=(16,), ps=(0.5,), epochs=1, smoke_test=True)

    @property
    def judged_p(self) -> float:
        """The rate the statements are judged at."""
        return self.reference_p if self.reference_p in self.ps else self.ps[-1]


SETTINGS = BatchNormSettings()


def build(placement: str, d_in: int, width: int, d_out: int, p: float, blocks: int
          ) -> nn.Sequential:
    """``blocks`` x (Linear-BatchNorm1d-ReLU) then a linear head, dropout at ``placement``."""
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {list(PLACEMENTS)}, got {placement!r}")
    layers: list[nn.Module] = [nn.Dropout(p)] if placement == "input-drop-linear-bn" else []
    for i in range(blocks):
        layers.append(nn.Linear(d_in if i == 0 else width, width))
        if placement == "linear-drop-bn":
            layers.append(nn.Dropout(p))
        layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU())
        if placement == "act-drop-linear-bn":
            layers.append(nn.Dropout(p))
    if placement == "after-last-bn":
        layers.append(nn.Dropout(p))
    layers.append(nn.Linear(width, d_out))
    return nn.Sequential(*layers)


#: [bn.recipe] and [bn.harm]: the same blocks without BatchNorm (``plain``: Linear-ReLU) or with
#: LayerNorm in its place (``ln``: Linear-LayerNorm-ReLU), with dropout after each ReLU (so it
#: feeds the next Linear: the recipe) or none.
RECIPE_NETS = {
    "plain|none": "Linear-ReLU blocks, no normalization, no dropout",
    "plain|act-drop-linear": "Linear-ReLU blocks, dropout after each ReLU (no BatchNorm follows)",
    "ln|none": "Linear-LayerNorm-ReLU blocks, no dropout",
    "ln|act-drop-linear-ln": "Linear-LayerNorm-ReLU blocks, dropout after each ReLU",
}


def build_recipe(net: str, d_in: int, width: int, d_out: int, p: float, blocks: int
                 ) -> nn.Sequential:
    """``blocks`` x (Linear-[LayerNorm]-ReLU[-Dropout]) then a linear head (`RECIPE_NETS`)."""
    if net not in RECIPE_NETS:
        raise ValueError(f"net must be one of {list(RECIPE_NETS)}, got {net!r}")
    norm, placement = net.split("|")
    layers: list[nn.Module] = []
    for i in range(blocks):
        layers.append(nn.Linear(d_in if i == 0 else width, width))
        if norm == "ln":
            layers.append(nn.LayerNorm(width))
        layers.append(nn.ReLU())
        if placement != "none":
            layers.append(nn.Dropout(p))
    layers.append(nn.Linear(width, d_out))
    return nn.Sequential(*layers)


def _recipe_one(d: Any, net: str, width: int, p: float, settings: BatchNormSettings, seed: int
                ) -> dict[str, Any]:
    """One recipe net trained exactly like `_one`'s (same init seed, batches and epochs)."""
    with seeded(seed):
        model = build_recipe(net, d.flat_train.shape[1], width, 10, p, settings.blocks)
    train(model, d.flat_train, d.y_train,
          TrainConfig(epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size,
                      seed=seed))
    return {"net": net, "width": width, "p": p if not net.endswith("none") else 0.0,
            "error": _error(model, d.flat_test, d.y_test)}


def _error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return 1.0 - metrics.accuracy(model.eval()(x), y, from_logits=True)


def _medians(model: nn.Module, x: torch.Tensor) -> list[float]:
    return [s.median for s in variance_shift(model, x).layers]


def _one(d: Any, placement: str, width: int, p: float, settings: BatchNormSettings, seed: int
         ) -> dict[str, Any]:
    with seeded(seed):
        model = build(placement, d.flat_train.shape[1], width, 10, p, settings.blocks)
    train(model, d.flat_train, d.y_train,
          TrainConfig(epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size,
                      seed=seed))
    fixed = recalibrate_bn(model, d.flat_train, batch_size=settings.recalibration_batch)
    return {
        "placement": placement, "width": width, "p": p if placement != "none" else 0.0,
        "shift": _medians(model, d.flat_test),
        "shift_after_recalibration": _medians(fixed, d.flat_test),
        "error": _error(model, d.flat_test, d.y_test),
        "error_after_recalibration": _error(fixed, d.flat_test, d.y_test),
    }


def _configs(settings: BatchNormSettings) -> list[tuple[str, int, float]]:
    out = []
    for width in settings.widths:
        out.append(("none", width, 0.0))
        out += [(pl, width, p) for pl in PLACEMENTS if pl != "none" for p in settings.ps]
    return out


def _find(rows: list[dict[str, Any]], placement: str, width: int, p: float) -> dict[str, Any]:
    return next(r for r in rows if r["placement"] == placement and r["width"] == width
                and (placement == "none" or r["p"] == p))


def _abs_log(values: list[float]) -> float:
    return float(np.mean([abs(math.log(v)) for v in values]))


def _log_ticks(ax: Any) -> None:
    """Labelled ticks on a log y axis where the data are (a fixed list of ticks up to 3 left
    the quick run's shifts of 4 to 24 unlabelled): a 1-2-5 series over more than a decade,
    a finer one below."""
    lo, hi = ax.get_ylim()
    subs = (1.0, 2.0, 5.0) if hi / lo > 10 else (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0,
                                                  8.0)
    ticks = [m * 10.0**e for e in range(-3, 4) for m in subs]
    ax.set_yticks([t for t in ticks if lo <= t <= hi])
    ax.set_ylim(lo, hi)


def _figures(per_seed: list[dict[str, Any]], settings: BatchNormSettings, ref_p: float
             ) -> list[Figure]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    figs = []
    width = max(settings.widths)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    layers = np.arange(1, settings.blocks + 1)
    for c, pl in enumerate(PLACEMENTS):
        a = np.asarray([_find(s["rows"], pl, width, ref_p)["shift"] for s in per_seed])
        ax1.errorbar(layers + (c - 2) * 0.06, a.mean(0), yerr=a.std(0), fmt="-o", capsize=3,
                     color=f"C{c}", label=pl)
    ax1.axhline(1.0, color="k", lw=0.8, ls=":")
    ax1.set_yscale("log")
    ax1.yaxis.set_major_formatter(ScalarFormatter())
    ax1.yaxis.set_minor_formatter(NullFormatter())
    _log_ticks(ax1)
    ax1.set_xticks(layers)
    ax1.set(title=f"Variance shift per BatchNorm layer (width {width}, p={ref_p})",
            xlabel="BatchNorm layer (1 = closest to the input)",
            ylabel="running var / test-time var (median over channels)")
    ax1.legend(fontsize=8)
    styles = ["-", "--", ":"]
    for c, pl in enumerate(PLACEMENTS):
        if pl == "none":
            continue
        for k, w in enumerate(settings.widths):
            a = np.asarray([[max(_find(s["rows"], pl, w, p)["shift"], key=lambda v:
                                 abs(math.log(v))) for p in settings.ps] for s in per_seed])
            ax2.errorbar(settings.ps, a.mean(0), yerr=a.std(0), fmt=styles[k % 3] + "o",
                         color=f"C{c}", capsize=3, label=f"{pl}, width {w}")
    ax2.axhline(1.0, color="k", lw=0.8, ls=":")
    ax2.set_yscale("log")
    ax2.yaxis.set_major_formatter(ScalarFormatter())
    ax2.yaxis.set_minor_formatter(NullFormatter())
    _log_ticks(ax2)
    ax2.set(title="Largest shift over the BatchNorm layers vs rate",
            xlabel="dropout rate p", ylabel="running var / test-time var")
    ax2.legend(fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figs.append(Figure("batchnorm_variance_shift", figure_png(fig),
                       f"Mean ± 1 sd over {len(per_seed)} seeds. 1 means BatchNorm normalizes "
                       f"test inputs with the right variance; > 1 means it shrinks them."))

    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, len(settings.widths), figsize=(6 * len(settings.widths), 4.2),
                             squeeze=False)
    for ax, w in zip(axes[0], settings.widths, strict=True):
        for c, pl in enumerate(PLACEMENTS):
            for key, style in (("error", "-o"), ("error_after_recalibration", "--x")):
                a = np.asarray([[_find(s["rows"], pl, w, p)[key] for p in settings.ps]
                                for s in per_seed]) * 100
                ax.errorbar(settings.ps, a.mean(0), yerr=a.std(0), fmt=style, color=f"C{c}",
                            capsize=3)
        ax.set(title=f"Test error, width {w}", xlabel="dropout rate p",
               ylabel="test error (%)")
    handles = [Line2D([], [], color=f"C{c}", lw=2, label=pl) for c, pl in enumerate(PLACEMENTS)]
    handles += [Line2D([], [], color="k", ls="-", marker="o", label="as trained"),
                Line2D([], [], color="k", ls="--", marker="x",
                       label="BatchNorm re-estimated, dropout off")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8,
               bbox_to_anchor=(0.5, -0.12))
    figs.append(Figure("batchnorm_error", figure_png(fig),
                       "Solid: the trained net; dashed: the same net with BatchNorm statistics "
                       "re-estimated on the training inputs with dropout off. 'none' has no "
                       "dropout (flat in p). Mean ± 1 sd over seeds."))
    return figs


def _recipe_err(recipe_seed: list[dict[str, Any]], net: str, width: int) -> float:
    return next(r["error"] for r in recipe_seed if r["net"] == net and r["width"] == width)


def recipe_costs(per_seed: list[dict[str, Any]], recipe: list[list[dict[str, Any]]],
                 settings: BatchNormSettings, p: float) -> dict[str, list[float]]:
    """Per seed (mean over widths), the test-error differences the recipe statements use."""
    def per(fn: Any) -> list[float]:
        return [float(np.mean([fn(s["rows"], r, w) for w in settings.widths]))
                for s, r in zip(per_seed, recipe, strict=True)]

    return {
        # with BatchNorm following: recipe minus dropout after the last BatchNorm
        "recipe_minus_after_last_bn": per(lambda rows, r, w: _find(
            rows, "act-drop-linear-bn", w, p)["error"] - _find(rows, "after-last-bn", w,
                                                               p)["error"]),
        # no BatchNorm at all: recipe minus no dropout
        "recipe_minus_none_without_bn": per(lambda rows, r, w: _recipe_err(
            r, "plain|act-drop-linear", w) - _recipe_err(r, "plain|none", w)),
        # between Linear and BatchNorm minus the recipe
        "linear_drop_bn_minus_recipe": per(lambda rows, r, w: _find(
            rows, "linear-drop-bn", w, p)["error"] - _find(rows, "act-drop-linear-bn", w,
                                                           p)["error"]),
        # LayerNorm: dropout minus none
        "ln_dropout_minus_none": per(lambda rows, r, w: _recipe_err(
            r, "ln|act-drop-linear-ln", w) - _recipe_err(r, "ln|none", w)),
        # BatchNorm: the recipe minus no dropout (the accuracy cost of the recipe)
        "recipe_minus_none_with_bn": per(lambda rows, r, w: _find(
            rows, "act-drop-linear-bn", w, p)["error"] - _find(rows, "none", w, 0.0)["error"]),
    }


def recipe_summary(per_seed: list[dict[str, Any]], recipe: list[list[dict[str, Any]]],
                   settings: BatchNormSettings, p: float) -> dict[str, Any]:
    """Each net's test error and its cost against the no-dropout net of the same kind (mean
    and se over seeds, per width), with the largest variance shift where BatchNorm is there."""
    def err(s: dict[str, Any], r: list[dict[str, Any]], name: str, w: int) -> float:
        if "|" in name:
            return _recipe_err(r, name, w)
        return _find(s["rows"], name, w, 0.0 if name == "none" else p)["error"]

    pairs = (("act-drop-linear-bn", "none"), ("after-last-bn", "none"),
             ("linear-drop-bn", "none"), ("plain|act-drop-linear", "plain|none"),
             ("ln|act-drop-linear-ln", "ln|none"))
    out: dict[str, Any] = {}
    for w in settings.widths:
        for name, none in pairs:
            seeds = list(zip(per_seed, recipe, strict=True))
            errors = [err(s, r, name, w) for s, r in seeds]
            base = [err(s, r, none, w) for s, r in seeds]
            m, se = mean_se(errors)
            cm, cse = mean_se([a - b for a, b in zip(errors, base, strict=True)])
            entry: dict[str, Any] = {"error": {"mean": m, "se": se},
                                     "cost_vs_no_dropout": {"mean": cm, "se": cse},
                                     "no_dropout_net": none}
            if "|" not in name:
                entry["largest_shift"] = mean_se([max(_find(s["rows"], name, w, p)["shift"],
                                                      key=lambda v: abs(math.log(v)))
                                                  for s in per_seed])[0]
            out[f"{name}|width={w}"] = entry
    return out


def statements(per_seed: list[dict[str, Any]], recipe: list[list[dict[str, Any]]],
               settings: BatchNormSettings, p: float, shift_effect: list[float],
               recal_gain: list[float], survey: dict[str, Any]) -> list[Statement]:
    """[bn.shift], [bn.harm], [bn.recipe] and [bn.practice], each from its own rule."""
    costs = recipe_costs(per_seed, recipe, settings, p)
    out = [effect_statement(
        "bn.shift", ID, "The train/test variance shift of BatchNorm is amplified by dropout.",
        shift_effect, min_effect=settings.min_log_shift,
        what=f"mean |log(running var / test var)| over BatchNorm layers with dropout before "
             f"BatchNorm (3 placements, all widths, p={p}) minus the same for the no-dropout net")]

    def parts_statement(id_: str, text: str, parts: list[tuple[str, list[float], float, str]],
                        rule: str) -> Statement:
        judged = [(name, *effect_conditions(e, t, u)) for name, e, t, u in parts]
        return Statement(
            id=id_, group=ID, text=text, verdict=all_of([(n, v) for n, v, _, _ in judged]),
            criterion=rule + " Statement: " + ALL_OF_RULE,
            conditions=[Condition(f"({n}) {c.rule}", c.measured, c.holds)
                        for n, _, cs, _ in judged for c in cs],
            numbers={n: {"verdict": v, **nums} for n, v, _, nums in judged})

    cost, min_gain = settings.max_recipe_cost, settings.min_recalibration_gain
    out.append(parts_statement(
        "bn.harm", "BatchNorm together with dropout often hurts, while LayerNorm with dropout "
        "is fine.",
        [("BatchNorm", recal_gain, min_gain, ""),
         ("LayerNorm", [cost - c for c in costs["ln_dropout_minus_none"]], 0.0, "")],
        f"two parts, each by the shared effect rule (supported if m - 2 se > the threshold; "
        f"partly supported if m > 0 and m + 2 se > it), test error as a fraction at p={p}: "
        f"(BatchNorm) the error that re-estimating BatchNorm with dropout off removes (3 "
        f"before-BatchNorm placements), threshold {min_gain:g}; (LayerNorm) {cost:g} - "
        f"(error of the LayerNorm net with dropout after each ReLU - error without dropout), "
        f"threshold 0 (dropout with LayerNorm costs at most {cost * 100:g} pp)."))
    out.append(parts_statement(
        "bn.recipe", "Put dropout after the activation, before the next linear layer, not "
        "between BatchNorm and the linear/conv layer.",
        [("with BatchNorm following", [cost - c for c in costs["recipe_minus_after_last_bn"]],
          0.0, ""),
         ("without BatchNorm", [cost - c for c in costs["recipe_minus_none_without_bn"]], 0.0,
          ""),
         ("vs between Linear and BatchNorm", costs["linear_drop_bn_minus_recipe"], 0.0, "")],
        f"three parts, each by the shared effect rule, test error as a fraction at p={p}, mean "
        f"over widths: (with BatchNorm following) {cost:g} - (error of dropout after each ReLU "
        f"feeding Linear -> BatchNorm - error of dropout only after the last BatchNorm), "
        f"threshold 0: the recipe costs at most {cost * 100:g} pp against the safe placement; "
        f"(without BatchNorm) {cost:g} - (error of Linear-ReLU-Dropout blocks - error of the "
        f"same net without dropout), threshold 0; (vs between Linear and BatchNorm) error of "
        f"dropout between each Linear and its BatchNorm - error of the recipe, threshold 0."))
    if "bn.practice" in survey["judged"]:
        out.append(survey["judged"]["bn.practice"])
    return out


def _recipe_figure(per_seed: list[dict[str, Any]], recipe: list[list[dict[str, Any]]],
                   settings: BatchNormSettings, p: float) -> list[Figure]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summ = recipe_summary(per_seed, recipe, settings, p)
    names = ("act-drop-linear-bn", "after-last-bn", "linear-drop-bn", "plain|act-drop-linear",
             "ln|act-drop-linear-ln")
    fig, ax = plt.subplots(figsize=(8, 3.8))
    step = 0.8 / len(settings.widths)
    for k, w in enumerate(settings.widths):
        means = [summ[f"{n}|width={w}"]["cost_vs_no_dropout"]["mean"] * 100 for n in names]
        errs = [2 * summ[f"{n}|width={w}"]["cost_vs_no_dropout"]["se"] * 100 for n in names]
        ax.barh([i + (k - (len(settings.widths) - 1) / 2) * step for i in range(len(names))],
                means, step, xerr=errs, capsize=3, label=f"width {w}")
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set_yticks(range(len(names)), [
        "BN: after each ReLU (recipe)", "BN: after the last BN only", "BN: between Linear and BN",
        "no norm: after each ReLU (recipe)", "LayerNorm: after each ReLU"])
    ax.invert_yaxis()
    ax.set(xlabel="test error minus the same net without dropout (pp; > 0: dropout costs)",
           title=f"Accuracy cost of each dropout placement, p={p}")
    ax.legend(fontsize=8)
    return [Figure("batchnorm_recipe", figure_png(fig),
                   f"Test error of each placement minus the no-dropout net of the same kind "
                   f"(BatchNorm, no normalization, LayerNorm), mean ± 2 se over "
                   f"{len(per_seed)} seeds. The recipe's BatchNorm variance shift is in the "
                   f"first figure; the nets without BatchNorm have no running variance.")]


# ---------------------------------------------------------------------------------------------
# the four steps
# ---------------------------------------------------------------------------------------------


def measure(settings: BatchNormSettings, seed: int) -> dict[str, Any]:
    """One seed: every BatchNorm net (`_configs`) and every recipe net at the judged rate, each
    seeding its own init, batches and masks from ``seed`` (so nothing run before matters)."""
    d = load_digits(seed=seed, test_fraction=settings.test_fraction)
    rows = [_one(d, placement, width, p, settings, seed)
            for placement, width, p in _configs(settings)]
    recipe = [_recipe_one(d, net, w, settings.judged_p, settings, seed)
              for w in settings.widths for net in RECIPE_NETS]
    return {"seed": seed, "rows": rows, "recipe": recipe}


def shared(settings: BatchNormSettings, seeds: tuple[int, ...]) -> dict[str, Any]:
    """The configuration survey ([bn.practice]), read once per claim."""
    return survey_claims(settings.smoke_test, ID)


def _main_and_recipe(per_seed: list[dict[str, Any]]
                     ) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """``measure``'s records split as the numbers keep them: BatchNorm rows, recipe rows."""
    return ([{"seed": s["seed"], "rows": s["rows"]} for s in per_seed],
            [s["recipe"] for s in per_seed])


def _effects(settings: BatchNormSettings, per_seed: list[dict[str, Any]]
             ) -> dict[str, list[float]]:
    """Per seed (mean over widths and the before-BatchNorm placements at the judged rate): the
    log-shift beyond the no-dropout net, the gain of re-estimating BatchNorm, and the error of
    dropout after each ReLU minus dropout after the last BatchNorm."""
    p = settings.judged_p
    out: dict[str, list[float]] = {"log_shift_over_baseline": [], "recalibration_gain": [],
                                   "after_last_bn_gain": []}
    for s in per_seed:
        shift_w, gain_w, last_w = [], [], []
        for w in settings.widths:
            base = _abs_log(_find(s["rows"], "none", w, 0.0)["shift"])
            for pl in BEFORE_BN:
                r = _find(s["rows"], pl, w, p)
                shift_w.append(_abs_log(r["shift"]) - base)
                gain_w.append(r["error"] - r["error_after_recalibration"])
            last_w.append(_find(s["rows"], "act-drop-linear-bn", w, p)["error"]
                          - _find(s["rows"], "after-last-bn", w, p)["error"])
        out["log_shift_over_baseline"].append(float(np.mean(shift_w)))
        out["recalibration_gain"].append(float(np.mean(gain_w)))
        out["after_last_bn_gain"].append(float(np.mean(last_w)))
    return out


def _first_edition(settings: BatchNormSettings, effects: dict[str, list[float]]
                   ) -> tuple[dict[str, Judgement], str]:
    """The first edition's three parts (shift, harm, placement) and its rule with its verdict,
    kept in the criterion for comparison with the statements."""
    p = settings.judged_p
    gain = settings.min_recalibration_gain
    parts = {
        "shift": base_judge(
            effects["log_shift_over_baseline"], min_effect=settings.min_log_shift,
            what=f"mean |log(running var / test var)| over BatchNorm layers, dropout before "
                 f"BatchNorm (3 placements, all widths, p={p}) minus the same for the "
                 f"no-dropout net"),
        "harm": base_judge(
            effects["recalibration_gain"], min_effect=gain,
            what=f"test error as trained - after re-estimating BatchNorm with dropout off (3 "
                 f"before-BatchNorm placements, all widths, p={p})"),
        "placement": base_judge(
            effects["after_last_bn_gain"], min_effect=gain,
            what=f"test error, dropout after each ReLU - dropout only after the last BatchNorm "
                 f"(p={p}, all widths)")}
    shift_j, harm_j, place_j = parts["shift"], parts["harm"], parts["placement"]
    if shift_j.verdict == "not supported":
        verdict = "not supported"
    elif shift_j.verdict == "supported" and harm_j.verdict == "supported":
        verdict = "supported"
    else:
        verdict = "partly supported"
    text = (f"Shift: {shift_j.criterion} -> {shift_j.verdict}. Harm: {harm_j.criterion} "
            f"-> {harm_j.verdict}. Overall: not supported if the shift is not supported; "
            f"supported if shift and harm are both supported; partly supported otherwise. "
            f"(Reported, not part of the verdict: placement, {place_j.criterion} -> "
            f"{place_j.verdict}.)")
    return parts, f" (The first edition's rule, verdict {verdict}: {text})"


def _summary(settings: BatchNormSettings, per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Per placement, width and rate: error and shift (before and after re-estimating
    BatchNorm) over seeds."""
    summary: dict[str, Any] = {}
    for pl in PLACEMENTS:
        for w in settings.widths:
            for p in settings.ps if pl != "none" else (0.0,):
                rows = [_find(s["rows"], pl, w, p) for s in per_seed]
                entry = {}
                for key in ("error", "error_after_recalibration"):
                    m, se = mean_se([r[key] for r in rows])
                    entry[key] = {"mean": m, "se": se}
                for key in ("shift", "shift_after_recalibration"):
                    a = np.asarray([r[key] for r in rows])
                    entry[key] = {"mean": a.mean(0).tolist(), "sd": a.std(0).tolist()}
                summary[f"{pl}|width={w}|p={p}"] = entry
    return summary


def _gain_by_placement(settings: BatchNormSettings, per_seed: list[dict[str, Any]]
                       ) -> dict[str, float]:
    """Where the harm comes from: the judged recalibration gain averages these."""
    p = settings.judged_p
    return {pl: float(np.mean([_find(s["rows"], pl, w, p)["error"]
                               - _find(s["rows"], pl, w, p)["error_after_recalibration"]
                               for s in per_seed for w in settings.widths]))
            for pl in BEFORE_BN}


def _key_number(settings: BatchNormSettings, parts: dict[str, Judgement],
                gain_by_placement: dict[str, float], split: str) -> str:
    shift_j, harm_j, place_j = parts["shift"], parts["harm"], parts["placement"]
    return (f"shift at p={settings.judged_p}: x{math.exp(shift_j.mean):.2f} beyond no-dropout; "
            f"re-estimating BN {direction(-harm_j.mean * 100, 'raises', 'lowers')} error by "
            f"{magnitude(harm_j.mean * 100, 'pp')} ("
            + ", ".join(f"{pl} {g * 100:.2f}" for pl, g in gain_by_placement.items())
            + f"); dropout after the last BN instead of after each ReLU "
            f"{direction(-place_j.mean * 100, 'raises', 'lowers')} error by "
            f"{magnitude(place_j.mean * 100, 'pp')}" + (f". {split}" if split else ""))


def _setup(settings: BatchNormSettings) -> str:
    train_pct = round(100 * (1 - settings.test_fraction))
    return (f"Digits (sklearn 8x8, {train_pct}/{100 - train_pct} split per seed): "
            f"{settings.blocks} x (Linear-BatchNorm1d-ReLU) of width {list(settings.widths)} + "
            f"linear head; dropout (torch nn.Dropout) at each placement with p in "
            f"{list(settings.ps)}; Adam lr {settings.lr:g}, batch {settings.batch_size}, "
            f"{settings.epochs} epochs. Shift measured on the test inputs with "
            f"dropkit.diagnose.variance_shift; BatchNorm re-estimated on the training inputs "
            f"(batches of {settings.recalibration_batch}) with dropkit.diagnose.recalibrate_bn.")


def _caveats(judged: list[Statement], survey: dict[str, Any]) -> list[str]:
    caveats = [
        "MLPs with BatchNorm1d on 8x8 digits, not the CNNs (ResNet/DenseNet on CIFAR) of Li et "
        "al.; digits are easy, so accuracy differences are a few test images.",
        "The no-dropout net also shows a shift (running averages lag the changing weights, and "
        "test inputs differ from training inputs); the shift effect is measured beyond it.",
        "The harm part averages three placements; see recalibration_gain_by_placement for "
        "which of them the gain comes from.",
        "Re-estimating on the training inputs also removes the lag of the running averages, so "
        "part of its gain is not specific to dropout; compare with the 'none' rows.",
        "Placements differ in how much they regularize, so the placement comparison mixes the "
        "variance shift with the amount of regularization.",
        "Dropout between BatchNorm and ReLU equals dropout after the ReLU (ReLU commutes with a "
        "non-negative mask), so it is not run separately.",
        "[bn.recipe]/[bn.harm]: the nets without BatchNorm have no running statistics, so no "
        "stored variance can shift; only their error is compared.",
    ]
    if not any(s.id == "bn.practice" for s in judged):
        caveats.append("[bn.practice] is not judged in this run: fewer than "
                       f"{config_survey.MIN_MODELS} CNN builders could be read "
                       f"({'; '.join(survey['table']['unavailable'])}).")
    return caveats


def judge(settings: BatchNormSettings, per_seed: list[dict[str, Any]],
                shared: dict[str, Any]) -> Judged:
    """The statements ([bn.shift], [bn.harm], [bn.recipe], [bn.practice] when the survey could
    judge it) and every number, from `measure`'s records and the survey."""
    main, recipe = _main_and_recipe(per_seed)
    p = settings.judged_p
    effects = _effects(settings, main)
    parts, first_edition = _first_edition(settings, effects)
    judged = statements(main, recipe, settings, p, effects["log_shift_over_baseline"],
                        effects["recalibration_gain"], shared)
    _, criterion = group_summary(judged)
    gains = _gain_by_placement(settings, main)
    numbers = {
        "recalibration_gain_by_placement": gains, "effects": effects,
        "part_verdicts": {k: j.verdict for k, j in parts.items()},
        "reference_p": p, "placements": PLACEMENTS, "summary": _summary(settings, main),
        "per_seed": main,
        "recipe": {"nets": RECIPE_NETS, "reference_p": p,
                   "summary": recipe_summary(main, recipe, settings, p), "per_seed": recipe},
        "config_survey": shared["table"]}
    return Judged(statements=judged, criterion=criterion + first_edition,
                  key_number=_key_number(settings, parts, gains, disagreement(judged)),
                  numbers=numbers, setup=_setup(settings), caveats=_caveats(judged, shared))


def figures(settings: BatchNormSettings, per_seed: list[dict[str, Any]],
            shared: dict[str, Any]) -> list[Figure]:
    """The variance shift, the error before and after re-estimating BatchNorm, the recipe's
    cost, and the survey's figure."""
    main, recipe = _main_and_recipe(per_seed)
    p = settings.judged_p
    return (_figures(main, settings, p) + _recipe_figure(main, recipe, settings, p)
            + list(shared["figures"]))


EXPERIMENT = ClaimExperiment(id=ID, title=TITLE, claim=CLAIM, settings=SETTINGS,
                             measure=measure, judge=judge, figures=figures, shared=shared)


def run(cfg: LabConfig) -> ClaimResult:
    """Run claim 6 here, serially (`dropkit.lab.base.run_experiment`)."""
    return run_experiment(EXPERIMENT, cfg)
