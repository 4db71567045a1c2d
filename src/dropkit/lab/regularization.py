"""Claim 1: dropout is a regularizer that prevents co-adaptation of hidden units.

*Regularization.* An MLP is trained on the digits (Adam, at least 50 epochs and 400 steps, so
every net fits its training set) at several training-set sizes, with dropout rates p in a grid
and, for comparison, without dropout but with L2 weight decay. We record the test error and the
generalization gap (test error - training error, both measured with dropout off). Effect per
seed: the test error without dropout minus the test error at the standard rate p = 0.5, averaged
over sizes (percentage points).

*Co-adaptation.* A unit is co-adapted when it is only useful in the presence of particular other
units. Operationally: remove a random fraction q of the hidden units of a trained net at test
time (exactly ``round(q h)`` of the ``h`` units of every hidden layer, the rest rescaled by
``h / (h - k)`` so the next layer's expected input is unchanged) and measure the accuracy lost.
Effect per seed: loss of the net trained without dropout minus loss of the net trained with
p = 0.5. We also report the mean absolute correlation between the first hidden layer's units on
the test set (Srivastava et al. 2014 argue dropout features are less co-adapted; correlation is a
second, cruder lens and does not enter the verdict).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, cast

import torch
from torch import nn

from dropkit.lab.base import (
    ClaimExperiment,
    ClaimResult,
    Figure,
    Judged,
    LabConfig,
    errorbar,
    figure_png,
    mean_se,
    run_experiment,
)
from dropkit.lab.base import judge as judge_effect
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
from dropkit.lab.train import TrainConfig, mlp, train
from dropkit.report.numbers import direction, magnitude

ID = "regularization"
TITLE = "Dropout as a regularizer that prevents co-adaptation"
CLAIM = ("Dropout is a regularizer: it lowers test error and the train/test gap, most on small "
         "data, comparably to or better than L2, by preventing hidden units from co-adapting.")


@dataclass(frozen=True)
class RegularizationSettings:
    """Every size, rate and threshold of the experiment (written into the result's ``config``)."""

    sizes: tuple[int | None, ...] = (100, 300, None)  # None: the full training split (~1,258)
    rates: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)
    weight_decays: tuple[float, ...] = (1e-3, 3e-3)
    hidden: tuple[int, ...] = (128, 128)
    min_steps: int = 400  # Adam steps: at least this many, and at least min_epochs epochs
    min_epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    removal_fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)
    judged_fraction: float = 0.3  # the removal fraction whose accuracy loss enters the verdict
    removal_repeats: int = 20
    # the standard hidden-unit rate: the effect is measured here (fixed in advance); it and 0.0
    # must be in ``rates``
    ref_p: float = 0.5
    min_reg_pp: float = 0.5  # a meaningful test-error reduction, percentage points
    min_coadapt_pp: float = 1.0  # a meaningful reduction in accuracy lost to unit removal, pp
    min_gap_pp: float = 0.5  # [reg.l2]: a meaningful reduction of the train/test gap, pp
    l2_tolerance_pp: float = 1.0  # [reg.l2]: "like L2": test error at most this above best L2's

    def quick(self) -> RegularizationSettings:
        """The smoke test: one small training set, two rates, one L2 strength, a small net."""
        return replace(self, sizes=(100,), rates=(0.0, 0.5), weight_decays=(1e-2,),
                       hidden=(32,), min_steps=40, min_epochs=1, removal_fractions=(0.3,),
                       removal_repeats=3)


SETTINGS = RegularizationSettings()


# ---------------------------------------------------------------------------------------------
# measurements (pure functions of a trained model)
# ---------------------------------------------------------------------------------------------


def error_pct(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> float:
    """Test-time (dropout off) classification error in percent."""
    from dropkit.metrics import accuracy

    with torch.no_grad():
        return 100.0 * (1.0 - accuracy(_eval_forward(model, x), y, from_logits=True))


def _eval_forward(model: nn.Sequential, x: torch.Tensor,
                  keep: list[torch.Tensor] | None = None) -> torch.Tensor:
    """The MLP's forward pass with every dropout layer off, optionally with hidden units removed.

    ``keep[j]`` is a ``(h_j,)`` 0/1 mask for the j-th hidden layer (applied where its Dropout
    sits, i.e. after the activation); kept units are rescaled by ``h_j / kept_j``. The model is
    only read: its modules are called directly, no train/eval flag is touched.
    """
    j = 0
    for layer in model:
        if isinstance(layer, nn.Dropout):
            continue
        x = layer(x)
        if keep is not None and isinstance(layer, nn.ReLU):
            m = keep[j]
            x = x * (m * (len(m) / m.sum()))  # (B, h) * (h,)
            j += 1
    return x


def removal_masks(widths: list[int], fraction: float, *,
                  generator: torch.Generator) -> list[torch.Tensor]:
    """For each hidden width h, a 0/1 mask with exactly ``round(fraction h)`` zeros at random."""
    masks = []
    for h in widths:
        k = min(int(round(fraction * h)), h - 1)  # always keep at least one unit
        m = torch.ones(h)
        m[torch.randperm(h, generator=generator)[:k]] = 0.0
        masks.append(m)
    return masks


def accuracy_lost_pct(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, fraction: float, *,
                      repeats: int, generator: torch.Generator) -> float:
    """Accuracy (pp) lost when ``fraction`` of every hidden layer is removed, mean of repeats."""
    from dropkit.metrics import accuracy

    widths = [m.out_features for m in model if isinstance(m, nn.Linear)][:-1]
    with torch.no_grad():
        full = accuracy(_eval_forward(model, x), y, from_logits=True)
        ablated = [accuracy(_eval_forward(model, x, removal_masks(widths, fraction,
                                                                  generator=generator)),
                            y, from_logits=True) for _ in range(repeats)]
    return 100.0 * (full - sum(ablated) / repeats)


def mean_abs_correlation(h: torch.Tensor) -> float:
    """Mean |Pearson correlation| over pairs of columns of ``h`` ``(B, H)``; constant columns
    (dead units) are left out. NaN if fewer than two columns vary."""
    h = h.double()
    h = h[:, h.std(dim=0) > 1e-12]
    if h.shape[1] < 2:
        return math.nan
    c = torch.corrcoef(h.T)  # (H', H')
    off = ~torch.eye(c.shape[0], dtype=torch.bool)
    return float(c[off].abs().mean())


def first_hidden(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Activations after the first ReLU, ``(B, h_1)``."""
    with torch.no_grad():
        return model[1](model[0](x))


# ---------------------------------------------------------------------------------------------
# the experiment
# ---------------------------------------------------------------------------------------------


def epochs_for(n: int, s: RegularizationSettings) -> int:
    """At least ``s.min_epochs`` epochs and at least ``s.min_steps`` steps: small sets get many
    epochs, and the full set is still trained to (near) zero training error."""
    return max(s.min_epochs, math.ceil(s.min_steps / math.ceil(n / s.batch_size)))


def fit(x: torch.Tensor, y: torch.Tensor, s: RegularizationSettings, *, p: float,
        weight_decay: float, seed: int) -> nn.Sequential:
    """An MLP trained for ``epochs_for(len(x), s)`` epochs of Adam."""
    torch.manual_seed(seed)
    model = mlp(x.shape[1], list(s.hidden), 10, p=p)
    epochs = epochs_for(len(x), s)
    return cast(nn.Sequential,
                train(model, x, y, TrainConfig(epochs=epochs, lr=s.lr, batch_size=s.batch_size,
                                               weight_decay=weight_decay, seed=seed)))


def size_label(n: int | None, n_full: int) -> str:
    return f"full ({n_full})" if n is None else str(n)


# ---------------------------------------------------------------------------------------------
# one seed's measurements
# ---------------------------------------------------------------------------------------------


def _coadaptation(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor,
                  s: RegularizationSettings, seed: int) -> dict[str, Any]:
    """Accuracy lost at each removal fraction and the first layer's mean |correlation|."""
    gen = torch.Generator().manual_seed(seed)  # one stream per net, from the seed alone
    return {"acc_lost_pct": [accuracy_lost_pct(model, x, y, q, repeats=s.removal_repeats,
                                               generator=gen) for q in s.removal_fractions],
            "mean_abs_corr": mean_abs_correlation(first_hidden(model, x))}


def _measure_size(s: RegularizationSettings, seed: int, n: int | None, *,
                  co: dict[str, Any] | None) -> dict[str, Any]:
    """Test and training error of every rate and every L2 strength at training-set size ``n``;
    with ``co`` (a dict to fill), the co-adaptation of the nets with p = 0 and p = ``ref_p``."""
    from dropkit.datasets.digits import load_digits

    data = load_digits(seed=seed, n_train=n)
    xtr, ytr, xte, yte = data.flat_train, data.y_train, data.flat_test, data.y_test
    tests, trains = [], []
    for p in s.rates:
        model = fit(xtr, ytr, s, p=p, weight_decay=0.0, seed=seed)
        tests.append(error_pct(model, xte, yte))
        trains.append(error_pct(model, xtr, ytr))
        if co is not None and p in (0.0, s.ref_p):
            co["p0" if p == 0.0 else "pref"] = _coadaptation(model, xte, yte, s, seed)
    l2_test, l2_gap = [], []
    for wd in s.weight_decays:
        model = fit(xtr, ytr, s, p=0.0, weight_decay=wd, seed=seed)
        te, tr = error_pct(model, xte, yte), error_pct(model, xtr, ytr)
        l2_test.append(te)
        l2_gap.append(te - tr)
    return {"test_err_pct": tests, "train_err_pct": trains,
            "gap_pct": [a - b for a, b in zip(tests, trains, strict=True)],
            "l2_test_err_pct": l2_test, "l2_gap_pct": l2_gap}


def measure(s: RegularizationSettings, seed: int) -> dict[str, Any]:
    """One seed: every size's errors (``by_size``, in the order of ``s.sizes``) and, on the last
    size, the co-adaptation of the nets trained with p = 0 and p = ``ref_p``. Every net is
    trained from ``torch.manual_seed(seed)`` (`fit`), so nothing run before changes it."""
    from dropkit.datasets.digits import load_digits

    n_full = len(load_digits(seed=seed).y_train)
    co: dict[str, Any] = {}
    by_size = [_measure_size(s, seed, n, co=co if i == len(s.sizes) - 1 else None)
               for i, n in enumerate(s.sizes)]
    return {"seed": seed, "n_full": n_full, "by_size": by_size, "co": co}


# ---------------------------------------------------------------------------------------------
# judging (no training)
# ---------------------------------------------------------------------------------------------


def size_labels(s: RegularizationSettings, per_seed: list[dict[str, Any]]) -> list[str]:
    """The sizes' labels; the full split's size as the first seed measured it."""
    return [size_label(n, per_seed[0]["n_full"]) for n in s.sizes]


def tables(s: RegularizationSettings, per_seed: list[dict[str, Any]]
           ) -> tuple[list[str], dict[str, dict[str, list[Any]]], dict[str, dict[str, list[Any]]]]:
    """The sizes' labels, and the errors per size (``res[label][key][seed][rate]``; L2 as
    ``[weight decay][seed]``) and co-adaptation (``co["p0" | "pref"][key][seed]``) over seeds."""
    labels = size_labels(s, per_seed)
    res: dict[str, dict[str, list[Any]]] = {}
    for i, lab in enumerate(labels):
        rows = [m["by_size"][i] for m in per_seed]
        res[lab] = {key: [r[key] for r in rows]
                    for key in ("test_err_pct", "train_err_pct", "gap_pct")}
        for key in ("l2_test_err_pct", "l2_gap_pct"):
            res[lab][key] = [[r[key][w] for r in rows] for w in range(len(s.weight_decays))]
    co = {k: {key: [m["co"][k][key] for m in per_seed]
              for key in ("acc_lost_pct", "mean_abs_corr")} for k in ("p0", "pref")}
    return labels, res, co


def effects(s: RegularizationSettings, labels: list[str], res: dict[str, Any],
            co: dict[str, Any]) -> tuple[list[float], list[float]]:
    """Per seed: test error at p = 0 minus at ``ref_p`` (mean over sizes, pp), and accuracy lost
    at the judged removal fraction, net without dropout minus net with ``ref_p`` (pp)."""
    i0, ip = s.rates.index(0.0), s.rates.index(s.ref_p)
    reg = [sum(res[lab]["test_err_pct"][k][i0] - res[lab]["test_err_pct"][k][ip]
               for lab in labels) / len(labels)
           for k in range(len(res[labels[0]]["test_err_pct"]))]
    iq = s.removal_fractions.index(s.judged_fraction)
    coadapt = [a[iq] - b[iq] for a, b in zip(co["p0"]["acc_lost_pct"],
                                             co["pref"]["acc_lost_pct"], strict=True)]
    return reg, coadapt


def verdict(s: RegularizationSettings, reg: list[float], coadapt: list[float]
            ) -> tuple[str, str, dict[str, str]]:
    """The first edition's rule: both parts supported -> supported; neither (both 'not
    supported') -> not; else partly."""
    j_reg = judge_effect(reg, min_effect=s.min_reg_pp,
                         what=f"test error(p=0) - test error(p={s.ref_p}) in pp, mean over sizes")
    j_co = judge_effect(coadapt, min_effect=s.min_coadapt_pp,
                        what="accuracy lost by removing hidden units (pp): net without dropout "
                             f"minus net with p={s.ref_p}")
    parts = (j_reg.verdict, j_co.verdict)
    if parts == ("supported", "supported"):
        v = "supported"
    elif parts == ("not supported", "not supported"):
        v = "not supported"
    else:
        v = "partly supported"
    criterion = (f"regularization: {j_reg.criterion} [{j_reg.verdict}]. co-adaptation: "
                 f"{j_co.criterion} [{j_co.verdict}]. Overall: supported if both parts are "
                 "supported, not supported if both are not, partly supported otherwise")
    return v, criterion, {"regularization": j_reg.verdict, "co_adaptation": j_co.verdict}


def best_l2(s: RegularizationSettings, r: dict[str, Any]) -> int:
    """The index of the weight decay with the lowest mean test error at one size."""
    return min(range(len(s.weight_decays)), key=lambda i: mean_se(r["l2_test_err_pct"][i])[0])


def _parts_statement(id: str, text: str, criterion: str, parts: list[Any],
                     extra: dict[str, Any] | None = None) -> Statement:
    """A statement made of parts ``(name, verdict, conditions, numbers)`` judged by `all_of`."""
    return Statement(
        id=id, group=ID, text=text, verdict=all_of([(name, v) for name, v, _, _ in parts]),
        criterion=criterion,
        conditions=[Condition(f"({name}) {c.rule}", c.measured, c.holds)
                    for name, _, cs, _ in parts for c in cs],
        numbers={**(extra or {}), **{name: {"verdict": v, **nums} for name, v, _, nums in parts}})


def l2_statement(s: RegularizationSettings, labels: list[str], res: dict[str, Any],
                 reg: list[float]) -> Statement:
    """[reg.l2]: test error, train/test gap, and dropout within a tolerance of the best L2."""
    i0, ip = s.rates.index(0.0), s.rates.index(s.ref_p)
    seeds = range(len(reg))
    gap = [sum(res[lab]["gap_pct"][k][i0] - res[lab]["gap_pct"][k][ip] for lab in labels)
           / len(labels) for k in seeds]

    def vs_best_l2(k: int) -> float:  # best L2 (by mean test error) minus dropout, pp
        return sum(res[lab]["l2_test_err_pct"][best_l2(s, res[lab])][k]
                   - res[lab]["test_err_pct"][k][ip] for lab in labels) / len(labels)

    l2 = [vs_best_l2(k) + s.l2_tolerance_pp for k in seeds]
    parts = [("test error", *effect_conditions(reg, s.min_reg_pp, "pp")),
             ("train/test gap", *effect_conditions(gap, s.min_gap_pp, "pp")),
             ("like L2", *effect_conditions(l2, 0.0, "pp"))]
    return _parts_statement(
        "reg.l2", "Dropout reduces overfitting in the same general sense as L2, by constraining "
        "effective capacity.",
        f"three parts, each by the shared effect rule (supported if m - 2 se > the threshold; "
        f"partly supported if m > 0 and m + 2 se > it): (1) test error without dropout minus "
        f"with p={s.ref_p}, mean over sizes, threshold {s.min_reg_pp:g} pp; (2) train/test gap "
        f"without dropout minus with p={s.ref_p}, threshold {s.min_gap_pp:g} pp; (3) test error "
        f"of the best L2 weight decay minus dropout's plus {s.l2_tolerance_pp:g} pp (dropout "
        f"within {s.l2_tolerance_pp:g} pp of L2 or better), threshold 0. Statement: "
        + ALL_OF_RULE, parts)


def when_statement(s: RegularizationSettings, labels: list[str], res: dict[str, Any]
                   ) -> Statement:
    """[reg.when]: the gain at the smallest training set, and that it exceeds the gain at the
    largest (needs two sizes)."""
    i0, ip = s.rates.index(0.0), s.rates.index(s.ref_p)
    small, large = labels[0], labels[-1]
    seeds = range(len(res[small]["test_err_pct"]))
    gain_small = [res[small]["test_err_pct"][k][i0] - res[small]["test_err_pct"][k][ip]
                  for k in seeds]
    more = [g - (res[large]["test_err_pct"][k][i0] - res[large]["test_err_pct"][k][ip])
            for k, g in zip(seeds, gain_small, strict=True)]
    parts = [("gain at the smallest n", *effect_conditions(gain_small, s.min_reg_pp, "pp")),
             ("larger where the gap is larger", *effect_conditions(more, 0.0, "pp"))]
    gap0 = {lab: mean_se([row[i0] for row in res[lab]["gap_pct"]])[0] for lab in labels}
    return _parts_statement(
        "reg.when", "Use dropout when training accuracy is much higher than validation accuracy "
        "(and other regularization is not enough).",
        f"two parts, each by the shared effect rule: (1) at the smallest training set (the "
        f"largest train/test gap without dropout), test error without dropout minus with "
        f"p={s.ref_p}, threshold {s.min_reg_pp:g} pp; (2) that gain minus the same gain at the "
        f"largest training set (smallest gap), threshold 0 pp. Statement: " + ALL_OF_RULE,
        parts, {"gap_without_dropout_pp": gap0, "sizes": [small, large]})


def statements(s: RegularizationSettings, labels: list[str], res: dict[str, Any],
               reg: list[float], coadapt: list[float]) -> list[Statement]:
    """[reg.coadapt], [reg.l2] and [reg.when], each from its own rule (issue 14).

    [reg.when] needs two training-set sizes (the small one with the large gap); with one size
    (the quick run) it is left out.
    """
    out = [effect_statement(
        "reg.coadapt", ID, "Zeroing units stops features from co-adapting, so each unit learns "
        "features useful in many contexts.", coadapt, min_effect=s.min_coadapt_pp, unit="pp",
        what=f"accuracy lost when {s.judged_fraction:.0%} of the hidden units are removed at "
             f"test time, net trained without dropout minus net trained with p={s.ref_p}"),
        l2_statement(s, labels, res, reg)]
    if len(labels) >= 2:
        out.append(when_statement(s, labels, res))
    return out


def _ms(values: list[float]) -> dict[str, float]:
    m, se = mean_se(values)
    return {"mean": m, "se": se}


def summary_per_size(s: RegularizationSettings, labels: list[str], res: dict[str, Any]
                     ) -> dict[str, Any]:
    """Per size: dropout's gain, its gap reduction, and dropout vs the best L2 (mean, se)."""
    i0, ip = s.rates.index(0.0), s.rates.index(s.ref_p)
    out = {}
    for lab in labels:
        r = res[lab]
        best = best_l2(s, r)
        out[lab] = {
            "dropout_gain_pp": _ms([row[i0] - row[ip] for row in r["test_err_pct"]]),
            "gap_reduction_pp": _ms([row[i0] - row[ip] for row in r["gap_pct"]]),
            "best_l2_weight_decay": s.weight_decays[best],
            "best_l2_minus_dropout_pp": _ms([a - row[ip] for a, row in zip(
                r["l2_test_err_pct"][best], r["test_err_pct"], strict=True)])}
    return out


def n_trains(s: RegularizationSettings, per_seed: list[dict[str, Any]]) -> list[int]:
    return [per_seed[0]["n_full"] if n is None else n for n in s.sizes]


def _key_number(s: RegularizationSettings, reg: list[float], coadapt: list[float]) -> str:
    m_reg, m_co = mean_se(reg), mean_se(coadapt)
    return (f"p={s.ref_p} {direction(-m_reg[0], 'raises', 'lowers')} test error by "
            f"{magnitude(m_reg[0], 'pp')} ± {m_reg[1]:.2f} pp (mean over sizes); "
            f"removing {s.judged_fraction:.0%} of units costs {m_co[0]:.1f} ± {m_co[1]:.1f} pp "
            "more accuracy without dropout")


def _setup(s: RegularizationSettings, labels: list[str], n_train: list[int]) -> str:
    return (f"sklearn digits (8x8, flattened to 64 inputs in [0, 1]), one random 70/30 split per "
            f"seed, training sets of {labels}; MLP 64-{'-'.join(map(str, s.hidden))}-10 with "
            f"ReLU and dropout p in {list(s.rates)} after each hidden layer, or p=0 with L2 "
            f"weight decay in {list(s.weight_decays)} (Adam's coupled L2); Adam (lr {s.lr}, batch "
            f"{s.batch_size}) for {[epochs_for(n, s) for n in n_train]} epochs (at least "
            f"{s.min_steps} steps and {s.min_epochs} epochs). Co-adaptation on the "
            f"{labels[-1]} training set: fractions {list(s.removal_fractions)} of every hidden "
            f"layer removed at test time, {s.removal_repeats} random removals each.")


def _caveats(labels: list[str]) -> list[str]:
    caveats = [
        "One training length per size (no early stopping): dropout nets converge more slowly, "
        "so longer training could change the gaps.",
        "The best L2 strength is chosen on the test error (no validation split), which favours "
        "L2 slightly in the comparison; dropout is judged at the fixed rate p = 0.5.",
        "Removing units at test time is the perturbation dropout trains for, so robustness to it "
        "is expected from a dropout net; the correlation measure is reported as a second lens.",
        "Small data (digits) and small MLPs; no data augmentation or early stopping.",
    ]
    if len(labels) < 2:
        caveats.append("[reg.when] needs two training-set sizes and is not judged in this run.")
    return caveats


def judge(s: RegularizationSettings, per_seed: list[dict[str, Any]], shared: dict[str, Any]
          ) -> Judged:
    """Statements, the claim's criterion and every number, from the seeds' measurements."""
    labels, res, co = tables(s, per_seed)
    reg, coadapt = effects(s, labels, res, co)
    _, part_criterion, parts = verdict(s, reg, coadapt)
    judged = statements(s, labels, res, reg, coadapt)
    _, criterion = group_summary(judged)
    n_train = n_trains(s, per_seed)
    numbers = {
        "rates": list(s.rates),
        "weight_decays": list(s.weight_decays),
        "sizes": labels,
        "epochs_per_size": [epochs_for(n, s) for n in n_train],
        "per_size_per_seed": res,
        "summary_per_size": summary_per_size(s, labels, res),
        "co_adaptation": {"removal_fractions": list(s.removal_fractions),
                          "judged_fraction": s.judged_fraction,
                          "trained_p0": co["p0"], f"trained_p{s.ref_p:g}": co["pref"]},
        "effects": {"regularization_pp": reg, "co_adaptation_pp": coadapt},
        "part_verdicts": parts,
    }
    split = disagreement(judged)
    return Judged(statements=judged,
                  criterion=criterion + f" (The first edition's two parts: {part_criterion}.)",
                  key_number=_key_number(s, reg, coadapt) + (f". {split}" if split else ""),
                  numbers=numbers, setup=_setup(s, labels, n_train), caveats=_caveats(labels))


# ---------------------------------------------------------------------------------------------
# figures (no training)
# ---------------------------------------------------------------------------------------------


def _error_figure(s: RegularizationSettings, labels: list[str], res: dict[str, Any]) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(labels), figsize=(4.2 * len(labels), 4), squeeze=False)
    for ax, lab in zip(axes[0], labels, strict=True):
        r = res[lab]
        errorbar(ax, list(s.rates), r["test_err_pct"], marker="o", color="C0",
                 label="test error, dropout")
        errorbar(ax, [p + 0.012 for p in s.rates], r["gap_pct"], marker="s", ls="--",
                 color="C1", label="train/test gap, dropout")  # dodged: equal at 0 train error
        for i, wd in enumerate(s.weight_decays):
            m, se = mean_se(r["l2_test_err_pct"][i])
            ax.axhline(m, color=f"C{2 + i}", ls=":", label=f"test error, L2 wd={wd:g} (p=0)")
            ax.axhspan(m - 2 * se, m + 2 * se, color=f"C{2 + i}", alpha=0.12)
        ax.set_title(f"n_train = {lab}")
        ax.set_xlabel("dropout rate p (hidden layers)")
        ax.set_ylabel("error (%)")
        ax.legend(fontsize=7)
    fig.suptitle(f"Digits, MLP {list(s.hidden)} (mean ± 2 se over seeds)")
    return Figure("regularization_error_vs_rate", figure_png(fig),
                  "Test error and train/test gap (test error - training error, dropout off) "
                  "vs dropout rate for each training-set size (the two coincide where the "
                  "training error is 0; the gap is drawn slightly to the right); dotted "
                  "lines: no dropout with L2 weight decay (band ± 2 se). Error bars: ± 2 se "
                  "over seeds.")


def _coadaptation_figure(s: RegularizationSettings, co: dict[str, Any]) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for key, color in (("p0", "C3"), ("pref", "C0")):
        corr = mean_se(co[key]["mean_abs_corr"])
        p = 0.0 if key == "p0" else s.ref_p
        errorbar(ax, list(s.removal_fractions), co[key]["acc_lost_pct"], marker="o",
                 color=color, label=f"trained with p={p:g} (mean |corr| {corr[0]:.3f})")
    ax.set_xlabel("fraction of hidden units removed at test time")
    ax.set_ylabel("test accuracy lost (percentage points)")
    ax.set_title("Co-adaptation: robustness to removing hidden units")
    ax.legend(fontsize=8)
    return Figure("regularization_coadaptation", figure_png(fig),
                  "Accuracy lost when a random fraction of every hidden layer is removed "
                  "(survivors rescaled), for nets trained on the full training split with and "
                  "without dropout; legend: mean |correlation| between first-layer hidden units "
                  "on the test set. Error bars: ± 2 se over seeds.")


def figures(s: RegularizationSettings, per_seed: list[dict[str, Any]], shared: dict[str, Any]
            ) -> list[Figure]:
    labels, res, co = tables(s, per_seed)
    return [_error_figure(s, labels, res), _coadaptation_figure(s, co)]


EXPERIMENT = ClaimExperiment(id=ID, title=TITLE, claim=CLAIM, settings=SETTINGS, measure=measure,
                             judge=judge, figures=figures, shared=None)


def run(cfg: LabConfig) -> ClaimResult:
    """Measure claim 1 (see the module docstring), one seed after another in this process."""
    return run_experiment(EXPERIMENT, cfg)
