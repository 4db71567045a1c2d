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
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
from torch import nn

from dropkit.lab.base import (
    ClaimResult,
    Figure,
    LabConfig,
    check_seeds,
    errorbar,
    figure_png,
    judge,
    mean_se,
)
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

REF_P = 0.5  # the standard hidden-unit rate: the effect is measured here (fixed in advance)
MIN_REG_PP = 0.5  # a meaningful test-error reduction, percentage points
MIN_COADAPT_PP = 1.0  # a meaningful reduction in accuracy lost to unit removal, pp
MIN_GAP_PP = 0.5  # [reg.l2]: a meaningful reduction of the train/test gap, pp
L2_TOLERANCE_PP = 1.0  # [reg.l2]: "like L2": test error at most this much above the best L2's


@dataclass(frozen=True)
class Settings:
    """Every size and rate of the experiment (written into the result's ``config``)."""

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


QUICK = Settings(sizes=(100,), rates=(0.0, 0.5), weight_decays=(1e-2,), hidden=(32,),
                 min_steps=40, min_epochs=1, removal_fractions=(0.3,), removal_repeats=3)


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


def epochs_for(n: int, s: Settings) -> int:
    """At least ``s.min_epochs`` epochs and at least ``s.min_steps`` steps: small sets get many
    epochs, and the full set is still trained to (near) zero training error."""
    return max(s.min_epochs, math.ceil(s.min_steps / math.ceil(n / s.batch_size)))


def fit(x: torch.Tensor, y: torch.Tensor, s: Settings, *, p: float, weight_decay: float,
        seed: int) -> nn.Sequential:
    """An MLP trained for ``epochs_for(len(x), s)`` epochs of Adam."""
    torch.manual_seed(seed)
    model = mlp(x.shape[1], list(s.hidden), 10, p=p)
    epochs = epochs_for(len(x), s)
    return cast(nn.Sequential,
                train(model, x, y, TrainConfig(epochs=epochs, lr=s.lr, batch_size=s.batch_size,
                                               weight_decay=weight_decay, seed=seed)))


def _ms(values: list[float]) -> dict[str, float]:
    m, se = mean_se(values)
    return {"mean": m, "se": se}


def size_label(n: int | None, n_full: int) -> str:
    return f"full ({n_full})" if n is None else str(n)


def verdict(reg: list[float], coadapt: list[float]) -> tuple[str, str, dict[str, str]]:
    """Both parts supported -> supported; neither (both 'not supported') -> not; else partly."""
    j_reg = judge(reg, min_effect=MIN_REG_PP,
                  what=f"test error(p=0) - test error(p={REF_P}) in pp, mean over sizes")
    j_co = judge(coadapt, min_effect=MIN_COADAPT_PP,
                 what="accuracy lost by removing hidden units (pp): net without dropout minus "
                      f"net with p={REF_P}")
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


def statements(s: Settings, labels: list[str], res: dict, reg: list[float],
               coadapt: list[float]) -> list[Statement]:
    """[reg.coadapt], [reg.l2] and [reg.when], each from its own rule (issue 14).

    [reg.when] needs two training-set sizes (the small one with the large gap); with one size
    (the quick run) it is left out.
    """
    i0, ip = s.rates.index(0.0), s.rates.index(REF_P)
    seeds = range(len(reg))
    out = [effect_statement(
        "reg.coadapt", ID, "Zeroing units stops features from co-adapting, so each unit learns "
        "features useful in many contexts.", coadapt, min_effect=MIN_COADAPT_PP, unit="pp",
        what=f"accuracy lost when {s.judged_fraction:.0%} of the hidden units are removed at "
             f"test time, net trained without dropout minus net trained with p={REF_P}")]

    gap = [sum(res[lab]["gap_pct"][k][i0] - res[lab]["gap_pct"][k][ip] for lab in labels)
           / len(labels) for k in seeds]

    def vs_best_l2(k: int) -> float:  # best L2 (by mean test error) minus dropout, pp
        total = 0.0
        for lab in labels:
            r = res[lab]
            best = min(range(len(s.weight_decays)),
                       key=lambda i: mean_se(r["l2_test_err_pct"][i])[0])
            total += r["l2_test_err_pct"][best][k] - r["test_err_pct"][k][ip]
        return total / len(labels)

    l2 = [vs_best_l2(k) + L2_TOLERANCE_PP for k in seeds]
    parts = [("test error", *effect_conditions(reg, MIN_REG_PP, "pp")),
             ("train/test gap", *effect_conditions(gap, MIN_GAP_PP, "pp")),
             ("like L2", *effect_conditions(l2, 0.0, "pp"))]
    out.append(Statement(
        id="reg.l2", group=ID, text="Dropout reduces overfitting in the same general sense as "
        "L2, by constraining effective capacity.",
        verdict=all_of([(name, v) for name, v, _, _ in parts]),
        criterion=(f"three parts, each by the shared effect rule (supported if m - 2 se > the "
                   f"threshold; partly supported if m > 0 and m + 2 se > it): (1) test error "
                   f"without dropout minus with p={REF_P}, mean over sizes, threshold "
                   f"{MIN_REG_PP:g} pp; (2) train/test gap without dropout minus with "
                   f"p={REF_P}, threshold {MIN_GAP_PP:g} pp; (3) test error of the best L2 "
                   f"weight decay minus dropout's plus {L2_TOLERANCE_PP:g} pp (dropout within "
                   f"{L2_TOLERANCE_PP:g} pp of L2 or better), threshold 0. Statement: "
                   + ALL_OF_RULE),
        conditions=[Condition(f"({name}) {c.rule}", c.measured, c.holds)
                    for name, _, cs, _ in parts for c in cs],
        numbers={name: {"verdict": v, **nums} for name, v, _, nums in parts}))

    if len(labels) >= 2:
        small, large = labels[0], labels[-1]
        gain_small = [res[small]["test_err_pct"][k][i0] - res[small]["test_err_pct"][k][ip]
                      for k in seeds]
        more = [g - (res[large]["test_err_pct"][k][i0] - res[large]["test_err_pct"][k][ip])
                for k, g in zip(seeds, gain_small, strict=True)]
        parts = [("gain at the smallest n", *effect_conditions(gain_small, MIN_REG_PP, "pp")),
                 ("larger where the gap is larger", *effect_conditions(more, 0.0, "pp"))]
        gap0 = {lab: mean_se([row[i0] for row in res[lab]["gap_pct"]])[0] for lab in labels}
        out.append(Statement(
            id="reg.when", group=ID, text="Use dropout when training accuracy is much higher "
            "than validation accuracy (and other regularization is not enough).",
            verdict=all_of([(name, v) for name, v, _, _ in parts]),
            criterion=(f"two parts, each by the shared effect rule: (1) at the smallest "
                       f"training set (the largest train/test gap without dropout), test error "
                       f"without dropout minus with p={REF_P}, threshold {MIN_REG_PP:g} pp; "
                       f"(2) that gain minus the same gain at the largest training set "
                       f"(smallest gap), threshold 0 pp. Statement: " + ALL_OF_RULE),
            conditions=[Condition(f"({name}) {c.rule}", c.measured, c.holds)
                        for name, _, cs, _ in parts for c in cs],
            numbers={"gap_without_dropout_pp": gap0, "sizes": [small, large],
                     **{name: {"verdict": v, **nums} for name, v, _, nums in parts}}))
    return out


def figures(s: Settings, labels: list[str], res: dict, co: dict) -> list[Figure]:
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
    reg_fig = Figure("regularization_error_vs_rate", figure_png(fig),
                     "Test error and train/test gap (test error - training error, dropout off) "
                     "vs dropout rate for each training-set size (the two coincide where the "
                     "training error is 0; the gap is drawn slightly to the right); dotted "
                     "lines: no dropout with L2 weight decay (band ± 2 se). Error bars: ± 2 se "
                     "over seeds.")

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for key, color in (("p0", "C3"), ("pref", "C0")):
        corr = mean_se(co[key]["mean_abs_corr"])
        p = 0.0 if key == "p0" else REF_P
        errorbar(ax, list(s.removal_fractions), co[key]["acc_lost_pct"], marker="o",
                  color=color, label=f"trained with p={p:g} (mean |corr| {corr[0]:.3f})")
    ax.set_xlabel("fraction of hidden units removed at test time")
    ax.set_ylabel("test accuracy lost (percentage points)")
    ax.set_title("Co-adaptation: robustness to removing hidden units")
    ax.legend(fontsize=8)
    co_fig = Figure("regularization_coadaptation", figure_png(fig),
                    "Accuracy lost when a random fraction of every hidden layer is removed "
                    "(survivors rescaled), for nets trained on the full training split with and "
                    "without dropout; legend: mean |correlation| between first-layer hidden units "
                    "on the test set. Error bars: ± 2 se over seeds.")
    return [reg_fig, co_fig]


def run(cfg: LabConfig) -> ClaimResult:
    """Measure claim 1 (see the module docstring)."""
    from dropkit._progress import progress_bar
    from dropkit.datasets.digits import load_digits

    start = time.perf_counter()
    s = QUICK if cfg.quick else Settings()
    seeds = check_seeds(cfg)
    n_full = len(load_digits(seed=seeds[0]).y_train)
    labels = [size_label(n, n_full) for n in s.sizes]
    n_trains = [n_full if n is None else n for n in s.sizes]
    res: dict[str, dict[str, list[Any]]] = {
        lab: {"test_err_pct": [], "train_err_pct": [], "gap_pct": [], "l2_test_err_pct":
              [[] for _ in s.weight_decays], "l2_gap_pct": [[] for _ in s.weight_decays]}
        for lab in labels}
    co: dict[str, dict[str, list[Any]]] = {k: {"acc_lost_pct": [], "mean_abs_corr": []}
                                           for k in ("p0", "pref")}
    runs = len(seeds) * len(s.sizes) * (len(s.rates) + len(s.weight_decays))
    with progress_bar(total=runs, desc=ID, file=sys.stderr, enabled=cfg.progress) as bar:
        for seed in seeds:
            for n, lab in zip(s.sizes, labels, strict=True):
                data = load_digits(seed=seed, n_train=n)
                xtr, ytr, xte, yte = data.flat_train, data.y_train, data.flat_test, data.y_test
                r = res[lab]
                tests, trains = [], []
                for p in s.rates:
                    model = fit(xtr, ytr, s, p=p, weight_decay=0.0, seed=seed)
                    tests.append(error_pct(model, xte, yte))
                    trains.append(error_pct(model, xtr, ytr))
                    bar.update()
                    if lab == labels[-1] and p in (0.0, REF_P):
                        gen = torch.Generator().manual_seed(seed)
                        c = co["p0" if p == 0.0 else "pref"]
                        c["acc_lost_pct"].append(
                            [accuracy_lost_pct(model, xte, yte, q, repeats=s.removal_repeats,
                                               generator=gen) for q in s.removal_fractions])
                        c["mean_abs_corr"].append(mean_abs_correlation(first_hidden(model, xte)))
                r["test_err_pct"].append(tests)
                r["train_err_pct"].append(trains)
                r["gap_pct"].append([a - b for a, b in zip(tests, trains, strict=True)])
                for i, wd in enumerate(s.weight_decays):
                    model = fit(xtr, ytr, s, p=0.0, weight_decay=wd, seed=seed)
                    te, tr = error_pct(model, xte, yte), error_pct(model, xtr, ytr)
                    r["l2_test_err_pct"][i].append(te)
                    r["l2_gap_pct"][i].append(te - tr)
                    bar.update()

    i0, ip = s.rates.index(0.0), s.rates.index(REF_P)
    reg = [sum(res[lab]["test_err_pct"][k][i0] - res[lab]["test_err_pct"][k][ip]
               for lab in labels) / len(labels) for k in range(len(seeds))]
    iq = s.removal_fractions.index(s.judged_fraction)
    coadapt = [a[iq] - b[iq] for a, b in zip(co["p0"]["acc_lost_pct"],
                                             co["pref"]["acc_lost_pct"], strict=True)]
    _, part_criterion, parts = verdict(reg, coadapt)
    judged = statements(s, labels, res, reg, coadapt)
    v, criterion = group_summary(judged)
    criterion += f" (The first edition's two parts: {part_criterion}.)"

    per_size = {}
    for lab in labels:
        r = res[lab]
        d_eff = _ms([row[i0] - row[ip] for row in r["test_err_pct"]])
        gap_eff = _ms([row[i0] - row[ip] for row in r["gap_pct"]])
        best_l2 = min(range(len(s.weight_decays)),
                      key=lambda i: mean_se(r["l2_test_err_pct"][i])[0])
        vs_l2 = _ms([a - row[ip] for a, row in zip(r["l2_test_err_pct"][best_l2],
                                                       r["test_err_pct"], strict=True)])
        per_size[lab] = {"dropout_gain_pp": d_eff, "gap_reduction_pp": gap_eff,
                         "best_l2_weight_decay": s.weight_decays[best_l2],
                         "best_l2_minus_dropout_pp": vs_l2}
    numbers = {
        "rates": list(s.rates),
        "weight_decays": list(s.weight_decays),
        "sizes": labels,
        "epochs_per_size": [epochs_for(n, s) for n in n_trains],
        "per_size_per_seed": res,
        "summary_per_size": per_size,
        "co_adaptation": {"removal_fractions": list(s.removal_fractions),
                          "judged_fraction": s.judged_fraction,
                          "trained_p0": co["p0"], f"trained_p{REF_P:g}": co["pref"]},
        "effects": {"regularization_pp": reg, "co_adaptation_pp": coadapt},
        "part_verdicts": parts,
    }
    m_reg, m_co = mean_se(reg), mean_se(coadapt)
    key = (f"p={REF_P} {direction(-m_reg[0], 'raises', 'lowers')} test error by "
           f"{magnitude(m_reg[0], 'pp')} ± {m_reg[1]:.2f} pp (mean over sizes); "
           f"removing {s.judged_fraction:.0%} of units costs {m_co[0]:.1f} ± {m_co[1]:.1f} pp "
           "more accuracy without dropout")
    setup = (f"sklearn digits (8x8, flattened to 64 inputs in [0, 1]), one random 70/30 split per "
             f"seed, training sets of {labels}; MLP 64-{'-'.join(map(str, s.hidden))}-10 with "
             f"ReLU and dropout p in {list(s.rates)} after each hidden layer, or p=0 with L2 "
             f"weight decay in {list(s.weight_decays)} (Adam's coupled L2); Adam (lr {s.lr}, batch "
             f"{s.batch_size}) for {[epochs_for(len_, s) for len_ in n_trains]} epochs (at least "
             f"{s.min_steps} steps and {s.min_epochs} epochs). Co-adaptation on the "
             f"{labels[-1]} training set: fractions {list(s.removal_fractions)} of every hidden "
             f"layer removed at test time, {s.removal_repeats} random removals each.")
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
    split = disagreement(judged)
    return ClaimResult(id=ID, title=TITLE, claim=CLAIM, setup=setup, verdict=v,
                       criterion=criterion, key_number=key + (f". {split}" if split else ""),
                       numbers=numbers, figures=figures(s, labels, res, co), caveats=caveats,
                       config={"quick": cfg.quick, **asdict(s), "min_gap_pp": MIN_GAP_PP,
                               "l2_tolerance_pp": L2_TOLERANCE_PP}, seeds=seeds,
                       seconds=time.perf_counter() - start, statements=judged)
