"""Claim 4: "inverted" dropout scales during training instead of at inference, and the two
conventions are the same model; skipping the scaling altogether is what breaks a network.

Classic dropout (Srivastava et al., 2014) trains with ``m * h`` and multiplies by ``1 - p`` at
test; inverted dropout trains with ``m * h / (1 - p)`` and does nothing at test. With the next
linear layer's weight ``W``, ``W (m h) = ((1 - p) W) (m h / (1 - p))``: a classic net becomes an
inverted one by multiplying the weight after each dropout by ``1 - p`` (`to_inverted`).

Measured on digits with an MLP 64-H-H-10, dropout after each hidden ReLU, per seed and rate p:

1. *Conversion*: the converted net's test logits and MC samples (same mask seed) vs the classic
   net's (float rounding only; every net here is float64).
2. *Training*: an inverted net trained from the converted initial weights with Adam whose
   learning rate for the post-dropout weights is ``(1 - p)`` times the rest and epsilon
   ``1 / (1 - p)`` times (the exact reparameterisation) vs the converted classic net; and an
   inverted net trained with one learning rate for all weights (what people do).
3. *No scaling*: the classic net evaluated without its ``1 - p`` factor (each dropout layer the
   identity at test): error, NLL, ECE and confidence vs p.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dropkit import metrics
from dropkit._progress import progress_bar
from dropkit.datasets.digits import load_digits
from dropkit.lab.base import ClaimResult, Figure, LabConfig, figure_png, judge, mean_se
from dropkit.lab.statements import (
    ALL_OF_RULE,
    Condition,
    Statement,
    all_of,
    disagreement,
    effect_conditions,
    group_summary,
)
from dropkit.lab.train import seeded
from dropkit.mc.mcdropout import MCDropout
from dropkit.nn import Dropout
from dropkit.report.numbers import signed

ID = "inverted"
TITLE = "Inverted vs classic dropout scaling"
CLAIM = ("'Inverted dropout' scales the kept units by 1/(1-p) during training instead of "
         "scaling by (1-p) at inference; the two give identical predictions once the next "
         "layer absorbs the constant, and a net evaluated with neither scaling is broken.")

IDENTITY_TOL = 1e-5
ADAM_EPS = 1e-8  # relative max-abs difference of logits that counts as identical
MIN_NLL_DAMAGE = 0.05  # nats per test digit, at the reference rate
REFERENCE_P = 0.5


@dataclass(frozen=True)
class InvertedSizes:
    """Sizes of the experiment (``quick`` selects tiny ones)."""

    hidden: int
    ps: tuple[float, ...]
    epochs: int
    lr: float
    batch_size: int
    samples: int


FULL = InvertedSizes(hidden=96, ps=(0.1, 0.3, 0.5, 0.7), epochs=15, lr=1e-2,
                     batch_size=64, samples=20)
QUICK = InvertedSizes(hidden=32, ps=(0.2, 0.5), epochs=1, lr=1e-2, batch_size=64, samples=4)


def build(d_in: int, hidden: int, d_out: int, p: float, scaling: str) -> nn.Sequential:
    """Linear-ReLU-Dropout twice, then a linear head; ``scaling`` as in `dropkit.nn.Dropout`."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), Dropout(p, scaling=scaling),
                         nn.Linear(hidden, hidden), nn.ReLU(), Dropout(p, scaling=scaling),
                         nn.Linear(hidden, d_out))


def _post_dropout_linears(model: nn.Sequential) -> list[tuple[Dropout, nn.Linear]]:
    pairs = []
    for i, m in enumerate(model):
        if isinstance(m, Dropout):
            nxt = model[i + 1] if i + 1 < len(model) else None
            if not isinstance(nxt, nn.Linear):
                raise ValueError("to_inverted needs every Dropout to feed a Linear directly")
            pairs.append((m, nxt))
    return pairs


def to_inverted(model: nn.Sequential) -> nn.Sequential:
    """A copy of a classic-scaling net as an inverted one with the same function.

    Each ``Dropout(p, "classic")`` becomes ``Dropout(p, "inverted")`` and the weight (not the
    bias) of the Linear it feeds is multiplied by ``1 - p``; the input model is not changed.
    """
    out = copy.deepcopy(model)
    with torch.no_grad():
        for drop, lin in _post_dropout_linears(out):
            if drop.scaling != "classic":
                raise ValueError("to_inverted expects classic-scaling Dropout modules")
            lin.weight.mul_(1.0 - drop.p)
            drop.scaling = "inverted"
    return out


def without_scaling(model: nn.Sequential) -> nn.Sequential:
    """A copy of a classic-scaling net whose dropout is the identity at test (no ``1 - p``)."""
    out = copy.deepcopy(model)
    for drop, _ in _post_dropout_linears(out):
        drop.scaling = "inverted"  # inverted scaling is the identity when inactive
    return out


def adam_train(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, sizes: InvertedSizes,
               seed: int, *, reparameterise_p: float | None = None) -> nn.Sequential:
    """Minibatch Adam on cross-entropy, in place; returns the model in eval mode.

    With ``reparameterise_p = p`` the weights of Linear layers fed by dropout get learning rate
    ``lr (1 - p)`` and epsilon ``eps / (1 - p)``: an inverted net trained so is *exactly* the
    classic net trained with plain Adam, after `to_inverted` (its gradients there are
    ``1 / (1 - p)`` times the classic ones, and Adam's step is scale-free up to ``eps``). The
    shared `dropkit.lab.train.train` has one learning rate, hence this loop. Shuffling and masks
    come from ``seed``, so nets trained with one seed see the same batches and masks.
    """
    scaled = {id(lin.weight) for _, lin in _post_dropout_linears(model)}
    factor = 1.0 if reparameterise_p is None else 1.0 - reparameterise_p
    groups: list[dict[str, Any]] = [
        {"params": [q for q in model.parameters() if id(q) not in scaled]},
        {"params": [q for q in model.parameters() if id(q) in scaled],
         "lr": sizes.lr * factor, "eps": ADAM_EPS / factor}]
    opt = torch.optim.Adam(groups, lr=sizes.lr, eps=ADAM_EPS)
    with seeded(seed):
        model.train()
        for _ in range(sizes.epochs):
            order = torch.randperm(len(x))
            for i in range(0, len(x), sizes.batch_size):
                idx = order[i:i + sizes.batch_size]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
    return model.eval()


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def _rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |a|."""
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


def _eval(logits: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    return {
        "error": 1.0 - metrics.accuracy(logits, y, from_logits=True),
        "nll": metrics.negative_log_likelihood(logits, y, from_logits=True),
        "ece": metrics.expected_calibration_error(logits, y, from_logits=True),
        "confidence": float(logits.softmax(-1).max(-1).values.mean()),
        "logit_scale": float(logits.std()),
    }


def _one(d: Any, sizes: InvertedSizes, p: float, seed: int) -> dict[str, Any]:
    # float64 throughout, so that "identical" means rounding of 1e-16, not of 1e-7
    x, y, xt, yt = d.flat_train.double(), d.y_train, d.flat_test.double(), d.y_test
    with seeded(seed):
        classic = build(x.shape[1], sizes.hidden, 10, p, "classic").double()
    inverted_exact = to_inverted(classic)  # same function at initialisation
    inverted_naive = to_inverted(classic)
    adam_train(classic, x, y, sizes, seed)
    adam_train(inverted_exact, x, y, sizes, seed, reparameterise_p=p)
    adam_train(inverted_naive, x, y, sizes, seed)
    converted = to_inverted(classic)

    ref = _logits(classic, xt)
    # One plain strategy for both nets, so that they see the very same torch.nn.Dropout masks.
    mc_a, mc_b = (MCDropout(m, samples=sizes.samples, seed=seed, progress=False,
                            strategy="stacked").predict(xt) for m in (classic, converted))
    assert mc_a.samples is not None and mc_b.samples is not None  # keep_samples defaults to True
    return {
        "p": p,
        "conversion_rel_diff": _rel_diff(ref, _logits(converted, xt)),
        "conversion_mc_rel_diff": _rel_diff(mc_a.samples, mc_b.samples),
        "trained_exact_rel_diff": _rel_diff(ref, _logits(inverted_exact, xt)),
        "trained_naive_rel_diff": _rel_diff(ref, _logits(inverted_naive, xt)),
        "trained_naive_prediction_agreement": float(
            (ref.argmax(-1) == _logits(inverted_naive, xt).argmax(-1)).double().mean()),
        "classic": _eval(ref, yt),
        "inverted_exact": _eval(_logits(inverted_exact, xt), yt),
        "inverted_naive": _eval(_logits(inverted_naive, xt), yt),
        "no_scaling": _eval(_logits(without_scaling(classic), xt), yt),
    }


def _figures(per_seed: list[dict[str, Any]], sizes: InvertedSizes) -> list[Figure]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ps = np.asarray(sizes.ps)

    def series(kind: str, key: str) -> tuple[np.ndarray, np.ndarray]:
        a = np.asarray([[r[kind][key] for r in s["by_p"]] for s in per_seed])  # (seeds, ps)
        return a.mean(0), a.std(0)

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, key, ylabel in zip(axes, ("error", "nll", "confidence"),
                               ("test error (fraction)", "test NLL (nats)",
                                "mean top-class probability"), strict=True):
        for kind, label, style in (("classic", "classic, scaled by (1-p) at test", "-o"),
                                   ("inverted_naive", "inverted (trained, same lr)", "-s"),
                                   ("no_scaling", "classic, NO scaling at test", "--^")):
            m, s = series(kind, key)
            ax.errorbar(ps, m, yerr=s, fmt=style, capsize=3, label=label)
        ax.set(xlabel="dropout rate p", ylabel=ylabel, title=f"{ylabel.split(' (')[0]} vs p")
        ax.legend(fontsize=8)
    fig.suptitle("What happens when the dropout scaling is skipped at test time")
    figs = [Figure("inverted_no_scaling", figure_png(fig),
                   f"Digits MLP 64-{sizes.hidden}-{sizes.hidden}-10, mean ± 1 sd over "
                   f"{len(per_seed)} seeds. The dashed line is the classic-trained net evaluated "
                   f"with each dropout layer the identity (missing 1-p factor).")]

    fig, ax = plt.subplots(figsize=(7, 4))
    floor = 1e-18  # for the log axis: an exact 0 difference is drawn at the floor
    diffs = (("conversion_rel_diff", "converted classic vs classic", "o"),
             ("conversion_mc_rel_diff", "same, MC samples (same seed)", "x"),
             ("trained_exact_rel_diff", "inverted, Adam lr x (1-p) on next layer", "s"),
             ("trained_naive_rel_diff", "inverted trained with one lr", "^"))
    for c, (key, label, marker) in enumerate(diffs):
        a = np.asarray([[max(r[key], floor) for r in s["by_p"]] for s in per_seed])
        for j, row in enumerate(a):
            ax.plot(ps + (c - 1.5) * 0.012, row, marker, color=f"C{c}",
                    label=label if j == 0 else None)  # offset so that markers do not hide
    ax.axhline(IDENTITY_TOL, color="k", ls=":", label=f"identity tolerance {IDENTITY_TOL:g}")
    ax.set_yscale("log")
    ax.set(xlabel="dropout rate p", ylabel="max |logit difference| / max |logit|",
           title="Classic vs inverted: test logits compared")
    ax.legend(fontsize=8)
    figs.append(Figure("inverted_identity", figure_png(fig),
                       "Each marker is one seed. Conversion: multiply the weight after each "
                       "dropout by 1-p. All nets are float64, so rounding is ~1e-16; exact "
                       "differences of 0 are drawn at 1e-18."))
    return figs


NAIVE_TOLERANCE = 0.01  # [inv.same]: trained the usual way, test error within 1 pp of classic
TORCH_CHECK_N = 100_000  # [inv.torch]: inputs pushed through torch.nn.Dropout per rate


def torch_dropout_check(ps: tuple[float, ...], n: int = TORCH_CHECK_N, seed: int = 0
                        ) -> dict[str, Any]:
    """What ``torch.nn.Dropout`` does, measured: on ``n`` positive inputs in training mode, the
    largest relative difference of a kept value from ``x / (1 - p)``, the fraction zeroed (and
    its distance from ``p`` in binomial standard deviations); in eval mode, whether the output
    is the input bit for bit. Torch's global RNG is forked (the caller's stream is untouched)."""
    out = {}
    with seeded(seed):
        x = torch.rand(n, dtype=torch.float64) + 0.5
        for p in ps:
            layer = nn.Dropout(p)
            y = layer.train()(x)
            kept = y != 0
            rel = float(((y[kept] - x[kept] / (1 - p)).abs() / (x[kept] / (1 - p))).max())
            zeroed = 1.0 - float(kept.double().mean())
            out[f"p={p:g}"] = {
                "kept_max_rel_diff_from_x_over_1_minus_p": rel,
                "zeroed_fraction": zeroed,
                "zeroed_z": (zeroed - p) / math.sqrt(p * (1 - p) / n),
                "eval_is_identity": bool(torch.equal(layer.eval()(x), x)),
            }
    return out


def statements(per_seed: list[dict[str, Any]], ref_p: float, worst_conversion: float,
               nll_damage: list[float], error_damage: list[float], torch_check: dict[str, Any]
               ) -> list[Statement]:
    """[inv.same], [inv.torch] and [inv.needed], each from its own rule (issue 14)."""
    identical = worst_conversion <= IDENTITY_TOL
    at_ref = [next(r for r in s["by_p"] if r["p"] == ref_p) for s in per_seed]
    naive = [NAIVE_TOLERANCE - abs(r["inverted_naive"]["error"] - r["classic"]["error"])
             for r in at_ref]
    v_naive, c_naive, n_naive = effect_conditions(naive, 0.0)
    same = Statement(
        id="inv.same", group=ID, text="Rescaling by 1/(1-p) at training time (inverted) is "
        "equivalent to scaling by (1-p) at test time.",
        verdict=("not supported" if not identical else "supported" if v_naive == "supported"
                 else "partly supported"),
        criterion=(f"two parts: (a) a classic net converted to the inverted convention (weights "
                   f"after each dropout times 1-p) gives the same logits and MC samples, to a "
                   f"relative max-abs difference <= {IDENTITY_TOL:g} for every seed and p; (b) "
                   f"trained the usual way (inverted with one learning rate, same initial "
                   f"function, batches and masks), its test error at p={ref_p} is within "
                   f"{NAIVE_TOLERANCE * 100:g} pp of the classic net's: effect "
                   f"{NAIVE_TOLERANCE:g} - |error difference| passes the shared rule (m - 2 se "
                   f"> 0). Supported if (a) holds and (b) is supported; partly supported if (a) "
                   f"holds and (b) is not supported; otherwise (a fails) not supported"),
        conditions=[Condition(f"(a) worst relative difference <= {IDENTITY_TOL:g}",
                              f"{worst_conversion:.3g}", identical),
                    *[Condition(f"(b) {c.rule}", c.measured, c.holds) for c in c_naive]],
        numbers={"worst_conversion_rel_diff": worst_conversion, "naive_training": n_naive})
    rows = list(torch_check.values())
    conds = [
        Condition("every kept value equals x / (1 - p) to a relative 1e-12",
                  f"largest {max(r['kept_max_rel_diff_from_x_over_1_minus_p'] for r in rows):.3g}",
                  all(r["kept_max_rel_diff_from_x_over_1_minus_p"] <= 1e-12 for r in rows)),
        Condition("the zeroed fraction is within 4 binomial sd of p",
                  "z = " + ", ".join(f"{r['zeroed_z']:+.2f}" for r in rows),
                  all(abs(r["zeroed_z"]) <= 4 for r in rows)),
        Condition("in eval mode the output is the input, bit for bit",
                  ", ".join(str(r["eval_is_identity"]) for r in rows),
                  all(r["eval_is_identity"] for r in rows)),
    ]
    held = sum(c.holds for c in conds)
    torch_s = Statement(
        id="inv.torch", group=ID, text="Inverted dropout is what torch.nn.Dropout does.",
        verdict="supported" if held == len(conds) else "not supported" if not held
        else "partly supported",
        criterion=(f"torch.nn.Dropout(p) applied to {TORCH_CHECK_N:,} inputs in [0.5, 1.5) "
                   f"for each p: supported if all three conditions hold (kept values scaled by "
                   f"1/(1-p), zeroed fraction p, identity in eval mode); partly supported if "
                   f"some hold; otherwise not supported"),
        conditions=conds, numbers=torch_check)
    v_nll, c_nll, n_nll = effect_conditions(nll_damage, MIN_NLL_DAMAGE, "nats")
    v_err, c_err, n_err = effect_conditions(error_damage, 0.01)
    needed = Statement(
        id="inv.needed", group=ID, text="Without the scaling, predictions are wrong.",
        verdict=all_of([("nll", v_nll), ("error", v_err)]),
        criterion=(f"two parts, each by the shared effect rule, for the classic-trained net at "
                   f"p={ref_p} evaluated without its (1-p) factor minus with it: (1) test NLL, "
                   f"threshold {MIN_NLL_DAMAGE:g} nats (the probabilities are wrong); (2) test "
                   f"error, threshold 0.01 (the labels are wrong). Statement: " + ALL_OF_RULE),
        conditions=[*[Condition(f"(1) {c.rule}", c.measured, c.holds) for c in c_nll],
                    *[Condition(f"(2) {c.rule}", c.measured, c.holds) for c in c_err]],
        numbers={"nll_damage": n_nll, "error_damage": n_err})
    return [same, torch_s, needed]


def run(cfg: LabConfig) -> ClaimResult:
    """Run claim 4 and judge it (rule in the returned criterion)."""
    start = time.perf_counter()
    sizes = QUICK if cfg.quick else FULL
    per_seed: list[dict[str, Any]] = []
    with progress_bar(total=len(cfg.seeds) * len(sizes.ps), desc=ID, enabled=cfg.progress,
              leave=False) as bar:
        for seed in cfg.seeds:
            d = load_digits(seed=seed)
            rows = []
            for p in sizes.ps:
                rows.append(_one(d, sizes, p, seed))
                bar.update(1)
            per_seed.append({"seed": seed, "by_p": rows})

    ref_p = REFERENCE_P if REFERENCE_P in sizes.ps else sizes.ps[-1]
    at_ref = [next(r for r in s["by_p"] if r["p"] == ref_p) for s in per_seed]
    nll_damage = [r["no_scaling"]["nll"] - r["classic"]["nll"] for r in at_ref]
    error_damage = [r["no_scaling"]["error"] - r["classic"]["error"] for r in at_ref]
    damage = judge(nll_damage, min_effect=MIN_NLL_DAMAGE,
                   what=f"test NLL without scaling - NLL with weight scaling, classic-trained "
                        f"net at p={ref_p}, nats")
    error_judgement = judge(error_damage, min_effect=0.01,
                            what=f"test error without scaling - with scaling at p={ref_p}")
    worst_conversion = max(max(r["conversion_rel_diff"], r["conversion_mc_rel_diff"])
                           for s in per_seed for r in s["by_p"])
    identical = worst_conversion <= IDENTITY_TOL
    if not identical:
        verdict = "not supported"
    elif damage.verdict == "supported":
        verdict = "supported"
    else:
        verdict = "partly supported"
    first_edition = (f"Identity: the converted classic net's logits and MC samples equal the "
                 f"classic net's to a relative max-abs difference <= {IDENTITY_TOL:g} for every "
                 f"seed and p (measured worst {worst_conversion:.2e}: "
                 f"{'holds' if identical else 'fails'}). Damage: {damage.criterion} -> "
                 f"{damage.verdict}. Overall: not supported if the identity fails; supported if "
                 f"it holds and the damage is supported; partly supported otherwise.")
    torch_check = torch_dropout_check(sizes.ps)
    judged = statements(per_seed, ref_p, worst_conversion, nll_damage, error_damage,
                        torch_check)
    first_verdict = verdict
    verdict, criterion = group_summary(judged)
    criterion += f" (The first edition's rule, verdict {first_verdict}: {first_edition})"
    split = disagreement(judged)

    def agg(kind: str, key: str) -> list[dict[str, float]]:
        out = []
        for j, p in enumerate(sizes.ps):
            m, se = mean_se([s["by_p"][j][kind][key] for s in per_seed])
            out.append({"p": p, "mean": m, "se": se})
        return out

    def worst(key: str) -> float:
        return max(r[key] for s in per_seed for r in s["by_p"])

    summary = {
        "worst_conversion_rel_diff": worst("conversion_rel_diff"),
        "worst_conversion_mc_rel_diff": worst("conversion_mc_rel_diff"),
        "worst_trained_exact_rel_diff": worst("trained_exact_rel_diff"),
        "min_trained_naive_rel_diff": min(r["trained_naive_rel_diff"]
                                          for s in per_seed for r in s["by_p"]),
        **{f"{kind}_{key}": agg(kind, key)
           for kind in ("classic", "inverted_exact", "inverted_naive", "no_scaling")
           for key in ("error", "nll", "ece", "confidence")},
    }
    numbers = {
        "effects": {"nll_damage_at_ref_p": nll_damage, "error_damage_at_ref_p": error_damage},
        "reference_p": ref_p, "identity_holds": identical,
        "error_damage_verdict": error_judgement.verdict,
        "error_damage_criterion": error_judgement.criterion,
        "summary": summary, "per_seed": per_seed,
    }
    key = (f"conversion worst rel. diff {worst_conversion:.1e}; without scaling at p={ref_p}: "
           f"NLL {signed(damage.mean, 'nats', 3)}, error "
           f"{signed(error_judgement.mean * 100, 'pp', 1)}"
           + (f". {split}" if split else ""))
    setup = (f"Digits (sklearn 8x8, 70/30 split per seed), MLP 64-{sizes.hidden}-{sizes.hidden}-"
             f"10 with dropkit.nn.Dropout after each hidden ReLU, p in {list(sizes.ps)}; float64; "
             f"Adam lr {sizes.lr}, batch {sizes.batch_size}, {sizes.epochs} "
             f"epochs; three nets per seed and p from the same initial function, batches and "
             f"masks: classic; inverted with Adam lr x (1-p), eps / (1-p) on post-dropout "
             f"weights (exact reparameterisation); inverted with one lr. MC comparison with "
             f"S={sizes.samples}.")
    caveats = [
        "The conversion identity is algebra (float rounding only); it is shown, not discovered.",
        "With Adam the exact training equivalence needs the post-dropout weights' learning rate "
        "times (1-p) and eps divided by (1-p); with plain SGD it would be lr times (1-p)^2. "
        "Trained with one learning rate the two conventions are different optimisation runs "
        "of the same model family, so their predictions differ.",
        "Without scaling, a ReLU net's activations grow by about 1/(1-p) per dropout layer; the "
        "argmax can survive this (error changes little) while the confidence and NLL do not.",
    ]
    return ClaimResult(
        id=ID, title=TITLE, claim=CLAIM, setup=setup, verdict=verdict, criterion=criterion,
        key_number=key, numbers=numbers, figures=_figures(per_seed, sizes), caveats=caveats,
        config={"sizes": asdict(sizes), "quick": cfg.quick, "identity_tol": IDENTITY_TOL,
                "min_nll_damage": MIN_NLL_DAMAGE, "naive_tolerance": NAIVE_TOLERANCE,
                "torch_check_n": TORCH_CHECK_N},
        seeds=list(cfg.seeds), seconds=time.perf_counter() - start, statements=judged)
