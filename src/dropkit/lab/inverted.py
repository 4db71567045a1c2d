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
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dropkit import metrics
from dropkit.datasets.digits import load_digits
from dropkit.lab.base import (
    ClaimExperiment,
    ClaimResult,
    Figure,
    Judged,
    LabConfig,
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


@dataclass(frozen=True)
class InvertedSettings:
    """Every size, rate and threshold of the experiment (written into the result's ``config``)."""

    hidden: int = 96
    ps: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7)
    epochs: int = 15
    lr: float = 1e-2
    batch_size: int = 64
    samples: int = 20  # MC samples compared between the classic and the converted net
    adam_eps: float = 1e-8
    # the rate [inv.same] (b) and [inv.needed] are judged at; the last of ``ps`` when not in it
    reference_p: float = 0.5
    identity_tol: float = 1e-5  # relative max-abs difference of logits that counts as identical
    naive_tolerance: float = 0.01  # [inv.same]: trained the usual way, error within 1 pp
    min_nll_damage: float = 0.05  # [inv.needed]: nats per test digit, at the reference rate
    min_error_damage: float = 0.01  # [inv.needed]: test error (fraction), at the reference rate
    torch_check_n: int = 100_000  # [inv.torch]: inputs pushed through torch.nn.Dropout per rate
    torch_check_seed: int = 0
    torch_kept_rel_tol: float = 1e-12  # [inv.torch]: kept value vs x / (1 - p), relative
    torch_max_z: float = 4.0  # [inv.torch]: zeroed fraction within this many binomial sd of p

    def quick(self) -> InvertedSettings:
        """The smoke test: a narrow net, two rates, one epoch, four MC samples."""
        return replace(self, hidden=32, ps=(0.2, 0.5), epochs=1, samples=4)


SETTINGS = InvertedSettings()


def reference_p(s: InvertedSettings) -> float:
    """The rate the statements are judged at: ``s.reference_p``, or the last of ``s.ps``."""
    return s.reference_p if s.reference_p in s.ps else s.ps[-1]


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


def adam_train(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, s: InvertedSettings,
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
         "lr": s.lr * factor, "eps": s.adam_eps / factor}]
    opt = torch.optim.Adam(groups, lr=s.lr, eps=s.adam_eps)
    with seeded(seed):
        model.train()
        for _ in range(s.epochs):
            order = torch.randperm(len(x))
            for i in range(0, len(x), s.batch_size):
                idx = order[i:i + s.batch_size]
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


def _one(d: Any, s: InvertedSettings, p: float, seed: int) -> dict[str, Any]:
    """The three nets of one seed and rate (classic, inverted exactly reparameterised, inverted
    with one learning rate), compared; every random draw comes from ``seed``."""
    # float64 throughout, so that "identical" means rounding of 1e-16, not of 1e-7
    x, y, xt, yt = d.flat_train.double(), d.y_train, d.flat_test.double(), d.y_test
    with seeded(seed):
        classic = build(x.shape[1], s.hidden, 10, p, "classic").double()
    inverted_exact = to_inverted(classic)  # same function at initialisation
    inverted_naive = to_inverted(classic)
    adam_train(classic, x, y, s, seed)
    adam_train(inverted_exact, x, y, s, seed, reparameterise_p=p)
    adam_train(inverted_naive, x, y, s, seed)
    converted = to_inverted(classic)

    ref = _logits(classic, xt)
    # One plain strategy for both nets, so that they see the very same torch.nn.Dropout masks.
    mc_a, mc_b = (MCDropout(m, samples=s.samples, seed=seed, progress=False,
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


def measure(s: InvertedSettings, seed: int) -> dict[str, Any]:
    """One seed: the digits split of ``seed`` and, for every rate in ``s.ps``, `_one`'s nets
    compared (``by_p``, in the order of ``s.ps``)."""
    d = load_digits(seed=seed)
    return {"seed": seed, "by_p": [_one(d, s, p, seed) for p in s.ps]}


def torch_dropout_check(ps: tuple[float, ...], n: int, seed: int) -> dict[str, Any]:
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


def shared(s: InvertedSettings, seeds: tuple[int, ...]) -> dict[str, Any]:
    """Once per claim (not per seed): the `torch_dropout_check` of every rate."""
    return {"torch_check": torch_dropout_check(s.ps, s.torch_check_n, s.torch_check_seed)}


# ---------------------------------------------------------------------------------------------
# judging (no training)
# ---------------------------------------------------------------------------------------------


def at_reference(s: InvertedSettings, per_seed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each seed's row at `reference_p`."""
    ref_p = reference_p(s)
    return [next(r for r in m["by_p"] if r["p"] == ref_p) for m in per_seed]


def damages(s: InvertedSettings, per_seed: list[dict[str, Any]]
            ) -> tuple[list[float], list[float]]:
    """Per seed, at `reference_p`: test NLL and test error of the classic net evaluated without
    its (1-p) factor minus with it."""
    at_ref = at_reference(s, per_seed)
    return ([r["no_scaling"]["nll"] - r["classic"]["nll"] for r in at_ref],
            [r["no_scaling"]["error"] - r["classic"]["error"] for r in at_ref])


def worst(per_seed: list[dict[str, Any]], key: str) -> float:
    return max(r[key] for m in per_seed for r in m["by_p"])


def worst_conversion(per_seed: list[dict[str, Any]]) -> float:
    """The largest relative difference of the converted net's logits or MC samples."""
    return max(worst(per_seed, "conversion_rel_diff"), worst(per_seed, "conversion_mc_rel_diff"))


def same_statement(s: InvertedSettings, per_seed: list[dict[str, Any]]) -> Statement:
    """[inv.same]: (a) the conversion identity; (b) trained the usual way, the same error."""
    ref_p, worst_conv = reference_p(s), worst_conversion(per_seed)
    identical = worst_conv <= s.identity_tol
    naive = [s.naive_tolerance - abs(r["inverted_naive"]["error"] - r["classic"]["error"])
             for r in at_reference(s, per_seed)]
    v_naive, c_naive, n_naive = effect_conditions(naive, 0.0)
    return Statement(
        id="inv.same", group=ID, text="Rescaling by 1/(1-p) at training time (inverted) is "
        "equivalent to scaling by (1-p) at test time.",
        verdict=("not supported" if not identical else "supported" if v_naive == "supported"
                 else "partly supported"),
        criterion=(f"two parts: (a) a classic net converted to the inverted convention (weights "
                   f"after each dropout times 1-p) gives the same logits and MC samples, to a "
                   f"relative max-abs difference <= {s.identity_tol:g} for every seed and p; "
                   f"(b) trained the usual way (inverted with one learning rate, same initial "
                   f"function, batches and masks), its test error at p={ref_p} is within "
                   f"{s.naive_tolerance * 100:g} pp of the classic net's: effect "
                   f"{s.naive_tolerance:g} - |error difference| passes the shared rule (m - 2 se "
                   f"> 0). Supported if (a) holds and (b) is supported; partly supported if (a) "
                   f"holds and (b) is not supported; otherwise (a fails) not supported"),
        conditions=[Condition(f"(a) worst relative difference <= {s.identity_tol:g}",
                              f"{worst_conv:.3g}", identical),
                    *[Condition(f"(b) {c.rule}", c.measured, c.holds) for c in c_naive]],
        numbers={"worst_conversion_rel_diff": worst_conv, "naive_training": n_naive})


def torch_statement(s: InvertedSettings, torch_check: dict[str, Any]) -> Statement:
    """[inv.torch]: kept values scaled by 1/(1-p), zeroed fraction p, identity in eval mode."""
    rows = list(torch_check.values())
    kept = [r["kept_max_rel_diff_from_x_over_1_minus_p"] for r in rows]
    conds = [
        Condition(f"every kept value equals x / (1 - p) to a relative {s.torch_kept_rel_tol:g}",
                  f"largest {max(kept):.3g}", all(k <= s.torch_kept_rel_tol for k in kept)),
        Condition(f"the zeroed fraction is within {s.torch_max_z:g} binomial sd of p",
                  "z = " + ", ".join(f"{r['zeroed_z']:+.2f}" for r in rows),
                  all(abs(r["zeroed_z"]) <= s.torch_max_z for r in rows)),
        Condition("in eval mode the output is the input, bit for bit",
                  ", ".join(str(r["eval_is_identity"]) for r in rows),
                  all(r["eval_is_identity"] for r in rows)),
    ]
    held = sum(c.holds for c in conds)
    return Statement(
        id="inv.torch", group=ID, text="Inverted dropout is what torch.nn.Dropout does.",
        verdict="supported" if held == len(conds) else "not supported" if not held
        else "partly supported",
        criterion=(f"torch.nn.Dropout(p) applied to {s.torch_check_n:,} inputs in [0.5, 1.5) "
                   f"for each p: supported if all three conditions hold (kept values scaled by "
                   f"1/(1-p), zeroed fraction p, identity in eval mode); partly supported if "
                   f"some hold; otherwise not supported"),
        conditions=conds, numbers=torch_check)


def needed_statement(s: InvertedSettings, nll_damage: list[float], error_damage: list[float]
                     ) -> Statement:
    """[inv.needed]: without the scaling, NLL and error get worse (two parts, `all_of`)."""
    v_nll, c_nll, n_nll = effect_conditions(nll_damage, s.min_nll_damage, "nats")
    v_err, c_err, n_err = effect_conditions(error_damage, s.min_error_damage)
    return Statement(
        id="inv.needed", group=ID, text="Without the scaling, predictions are wrong.",
        verdict=all_of([("nll", v_nll), ("error", v_err)]),
        criterion=(f"two parts, each by the shared effect rule, for the classic-trained net at "
                   f"p={reference_p(s)} evaluated without its (1-p) factor minus with it: (1) "
                   f"test NLL, threshold {s.min_nll_damage:g} nats (the probabilities are "
                   f"wrong); (2) test error, threshold {s.min_error_damage:g} (the labels are "
                   f"wrong). Statement: " + ALL_OF_RULE),
        conditions=[*[Condition(f"(1) {c.rule}", c.measured, c.holds) for c in c_nll],
                    *[Condition(f"(2) {c.rule}", c.measured, c.holds) for c in c_err]],
        numbers={"nll_damage": n_nll, "error_damage": n_err})


def statements(s: InvertedSettings, per_seed: list[dict[str, Any]], torch_check: dict[str, Any]
               ) -> list[Statement]:
    """[inv.same], [inv.torch] and [inv.needed], each from its own rule (issue 14)."""
    return [same_statement(s, per_seed), torch_statement(s, torch_check),
            needed_statement(s, *damages(s, per_seed))]


def first_edition(s: InvertedSettings, per_seed: list[dict[str, Any]]) -> str:
    """The first edition's rule and its verdict (identity, then NLL damage), in words."""
    nll_damage, _ = damages(s, per_seed)
    damage = judge_effect(nll_damage, min_effect=s.min_nll_damage,
                          what=f"test NLL without scaling - NLL with weight scaling, "
                               f"classic-trained net at p={reference_p(s)}, nats")
    worst_conv = worst_conversion(per_seed)
    identical = worst_conv <= s.identity_tol
    verdict = ("not supported" if not identical else "supported"
               if damage.verdict == "supported" else "partly supported")
    rule = (f"Identity: the converted classic net's logits and MC samples equal the classic "
            f"net's to a relative max-abs difference <= {s.identity_tol:g} for every seed and p "
            f"(measured worst {worst_conv:.2e}: {'holds' if identical else 'fails'}). Damage: "
            f"{damage.criterion} -> {damage.verdict}. Overall: not supported if the identity "
            f"fails; supported if it holds and the damage is supported; partly supported "
            f"otherwise.")
    return f"The first edition's rule, verdict {verdict}: {rule}"


def summary(s: InvertedSettings, per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Worst differences over seeds and rates; each net's metrics per rate (mean, se)."""

    def agg(kind: str, key: str) -> list[dict[str, float]]:
        out = []
        for j, p in enumerate(s.ps):
            m, se = mean_se([r["by_p"][j][kind][key] for r in per_seed])
            out.append({"p": p, "mean": m, "se": se})
        return out

    return {
        "worst_conversion_rel_diff": worst(per_seed, "conversion_rel_diff"),
        "worst_conversion_mc_rel_diff": worst(per_seed, "conversion_mc_rel_diff"),
        "worst_trained_exact_rel_diff": worst(per_seed, "trained_exact_rel_diff"),
        "min_trained_naive_rel_diff": min(r["trained_naive_rel_diff"]
                                          for m in per_seed for r in m["by_p"]),
        **{f"{kind}_{key}": agg(kind, key)
           for kind in ("classic", "inverted_exact", "inverted_naive", "no_scaling")
           for key in ("error", "nll", "ece", "confidence")},
    }


def _setup(s: InvertedSettings) -> str:
    return (f"Digits (sklearn 8x8, 70/30 split per seed), MLP 64-{s.hidden}-{s.hidden}-10 with "
            f"dropkit.nn.Dropout after each hidden ReLU, p in {list(s.ps)}; float64; Adam lr "
            f"{s.lr}, batch {s.batch_size}, {s.epochs} epochs; three nets per seed and p from "
            f"the same initial function, batches and masks: classic; inverted with Adam lr x "
            f"(1-p), eps / (1-p) on post-dropout weights (exact reparameterisation); inverted "
            f"with one lr. MC comparison with S={s.samples}.")


CAVEATS = [
    "The conversion identity is algebra (float rounding only); it is shown, not discovered.",
    "With Adam the exact training equivalence needs the post-dropout weights' learning rate "
    "times (1-p) and eps divided by (1-p); with plain SGD it would be lr times (1-p)^2. "
    "Trained with one learning rate the two conventions are different optimisation runs "
    "of the same model family, so their predictions differ.",
    "Without scaling, a ReLU net's activations grow by about 1/(1-p) per dropout layer; the "
    "argmax can survive this (error changes little) while the confidence and NLL do not.",
]


def judge(s: InvertedSettings, per_seed: list[dict[str, Any]], shared: dict[str, Any]
          ) -> Judged:
    """Statements, the claim's criterion and every number, from the seeds' measurements and
    the shared torch check."""
    ref_p = reference_p(s)
    nll_damage, error_damage = damages(s, per_seed)
    judged = statements(s, per_seed, shared["torch_check"])
    _, criterion = group_summary(judged)
    error_judgement = judge_effect(error_damage, min_effect=s.min_error_damage,
                                   what=f"test error without scaling - with scaling at p={ref_p}")
    worst_conv = worst_conversion(per_seed)
    numbers = {
        "effects": {"nll_damage_at_ref_p": nll_damage, "error_damage_at_ref_p": error_damage},
        "reference_p": ref_p, "identity_holds": worst_conv <= s.identity_tol,
        "error_damage_verdict": error_judgement.verdict,
        "error_damage_criterion": error_judgement.criterion,
        "summary": summary(s, per_seed), "per_seed": per_seed,
    }
    split = disagreement(judged)
    key = (f"conversion worst rel. diff {worst_conv:.1e}; without scaling at p={ref_p}: NLL "
           f"{signed(mean_se(nll_damage)[0], 'nats', 3)}, error "
           f"{signed(error_judgement.mean * 100, 'pp', 1)}" + (f". {split}" if split else ""))
    return Judged(statements=judged, criterion=f"{criterion} ({first_edition(s, per_seed)})",
                  key_number=key, numbers=numbers, setup=_setup(s), caveats=list(CAVEATS))


# ---------------------------------------------------------------------------------------------
# figures (no training)
# ---------------------------------------------------------------------------------------------


def _no_scaling_figure(s: InvertedSettings, per_seed: list[dict[str, Any]]) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ps = np.asarray(s.ps)

    def series(kind: str, key: str) -> tuple[np.ndarray, np.ndarray]:
        a = np.asarray([[r[kind][key] for r in m["by_p"]] for m in per_seed])  # (seeds, ps)
        return a.mean(0), a.std(0)

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, key, ylabel in zip(axes, ("error", "nll", "confidence"),
                               ("test error (fraction)", "test NLL (nats)",
                                "mean top-class probability"), strict=True):
        for kind, label, style in (("classic", "classic, scaled by (1-p) at test", "-o"),
                                   ("inverted_naive", "inverted (trained, same lr)", "-s"),
                                   ("no_scaling", "classic, NO scaling at test", "--^")):
            mean, sd = series(kind, key)
            ax.errorbar(ps, mean, yerr=sd, fmt=style, capsize=3, label=label)
        ax.set(xlabel="dropout rate p", ylabel=ylabel, title=f"{ylabel.split(' (')[0]} vs p")
        ax.legend(fontsize=8)
    fig.suptitle("What happens when the dropout scaling is skipped at test time")
    return Figure("inverted_no_scaling", figure_png(fig),
                  f"Digits MLP 64-{s.hidden}-{s.hidden}-10, mean ± 1 sd over {len(per_seed)} "
                  f"seeds. The dashed line is the classic-trained net evaluated with each dropout "
                  f"layer the identity (missing 1-p factor).")


def _identity_figure(s: InvertedSettings, per_seed: list[dict[str, Any]]) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ps = np.asarray(s.ps)
    fig, ax = plt.subplots(figsize=(7, 4))
    floor = 1e-18  # for the log axis: an exact 0 difference is drawn at the floor
    diffs = (("conversion_rel_diff", "converted classic vs classic", "o"),
             ("conversion_mc_rel_diff", "same, MC samples (same seed)", "x"),
             ("trained_exact_rel_diff", "inverted, Adam lr x (1-p) on next layer", "s"),
             ("trained_naive_rel_diff", "inverted trained with one lr", "^"))
    for c, (key, label, marker) in enumerate(diffs):
        a = np.asarray([[max(r[key], floor) for r in m["by_p"]] for m in per_seed])
        for j, row in enumerate(a):
            ax.plot(ps + (c - 1.5) * 0.012, row, marker, color=f"C{c}",
                    label=label if j == 0 else None)  # offset so that markers do not hide
    ax.axhline(s.identity_tol, color="k", ls=":", label=f"identity tolerance {s.identity_tol:g}")
    ax.set_yscale("log")
    ax.set(xlabel="dropout rate p", ylabel="max |logit difference| / max |logit|",
           title="Classic vs inverted: test logits compared")
    ax.legend(fontsize=8)
    return Figure("inverted_identity", figure_png(fig),
                  "Each marker is one seed. Conversion: multiply the weight after each "
                  "dropout by 1-p. All nets are float64, so rounding is ~1e-16; exact "
                  "differences of 0 are drawn at 1e-18.")


def figures(s: InvertedSettings, per_seed: list[dict[str, Any]], shared: dict[str, Any]
            ) -> list[Figure]:
    return [_no_scaling_figure(s, per_seed), _identity_figure(s, per_seed)]


EXPERIMENT = ClaimExperiment(id=ID, title=TITLE, claim=CLAIM, settings=SETTINGS, measure=measure,
                             judge=judge, figures=figures, shared=shared)


def run(cfg: LabConfig) -> ClaimResult:
    """Run claim 4 (see the module docstring), one seed after another in this process."""
    return run_experiment(EXPERIMENT, cfg)
