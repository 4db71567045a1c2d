"""[bayes.vi]: does the approximate posterior of dropout training behave like a posterior?

Gal & Ghahramani (2016) show that training with dropout and weight decay minimises a
variational objective: the KL divergence from a posterior to a family of distributions over
weights whose draws are the weights times Bernoulli masks. That is a derivation; whether the
family it picks behaves like a posterior is an empirical question, and one property every
posterior of a well-specified model has is measurable: it *concentrates* as the data grows.
Where the data lie, the posterior variance of the function falls roughly like 1/n
(Bernstein-von Mises). A variational family with a fixed dropout rate keeps the variance of its
masks fixed, so its spread need not fall (Osband, "Risk versus uncertainty in deep learning:
Bayes, bootstrap and the dangers of dropout", NIPS 2016 workshop; Hron, Matthews & Ghahramani,
"Variational Bayesian dropout: pitfalls and fixes", ICML 2018).

Measured on `bayes_gold`'s 1-D regression (the same network, prior, known noise and training
objective; the prior's weight per data point falls like 1/n, as in the derivation): for n per
cluster in ``sizes`` (nested data: each size adds points to the previous ones), the mean
epistemic variance over the grid points inside the data of

* MC dropout at a fixed rate ``p`` (``dropkit.MCDropout``, ``mc_samples`` passes), and
* the exact Gaussian posterior of the last layer given the MAP network's hidden features (the
  reference: a true posterior on this problem, computed in closed form),

and per seed the slope of log(variance) against log(n) (least squares). A posterior's slope is
about -1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from dropkit.experiments.claim import Condition, Statement
from dropkit.lab import bayes_gold as gold
from dropkit.lab.base import Figure, figure_png, mean_se
from dropkit.lab.posteriors import gaussian_linear_posterior, linear_predictive
from dropkit.mc.mcdropout import MCDropout

TEXT = ("Dropout training is variational inference with a specific approximate posterior "
        "(Gal & Ghahramani 2016).")
#: the slope at which a spread counts as concentrating: half a posterior's rate (-1)
MAX_SLOPE = -0.5


@dataclass(frozen=True)
class VISettings:
    """Sizes and the fixed dropout rate; the network, prior, noise and optimiser are
    ``base``'s (`bayes_gold.Settings`)."""

    sizes: tuple[int, ...] = (10, 40, 160)  # points per cluster (two clusters)
    p: float = 0.05  # the middle of bayes_gold's rate grid
    mc_samples: int = 200
    base: gold.Settings = field(default_factory=gold.Settings)

    def quick(self) -> VISettings:
        return VISettings(sizes=(10, 80), p=self.p, mc_samples=50, base=self.base.quick())


def nested_data(s: VISettings, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` ``(2, max n, 1)`` per cluster and ``y``; the first k rows of each cluster are the
    data of size k (float64, from ``seed``'s own generator)."""
    gen = torch.Generator().manual_seed(seed)
    n = max(s.sizes)
    x = torch.stack([lo + (hi - lo) * torch.rand(n, 1, generator=gen, dtype=torch.float64)
                     for lo, hi in s.base.clusters])
    return x, gold.truth(x) + s.base.noise_std * torch.randn(x.shape, generator=gen,
                                                             dtype=torch.float64)


def slope(ns: list[int], values: list[float]) -> float:
    """Least-squares slope of log(values) against log(ns)."""
    lx = [math.log(n) for n in ns]
    ly = [math.log(max(v, 1e-300)) for v in values]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return (sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True))
            / sum((a - mx) ** 2 for a in lx))


def measure(s: VISettings, seed: int) -> dict[str, Any]:
    """Epistemic variance in the data region per size, for MC dropout and the reference."""
    b = s.base
    xs, ys = nested_data(s, seed)
    g = gold.grid(b)
    inside = gold.region_masks(g, b)["data"]
    mc_var, ref_var = [], []
    for k in s.sizes:
        x, y = xs[:, :k].reshape(-1, 1), ys[:, :k].reshape(-1, 1)
        net = gold.fit(gold.make_net(b, seed, p=s.p), x, y, b, seed)
        pred = MCDropout(net, task="regression", samples=s.mc_samples, seed=seed,
                         tau=1.0 / b.noise_std**2, progress=False).predict(g)
        mc_var.append(float(pred.epistemic_variance.reshape(-1)[inside].mean()))
        map_net = gold.fit(gold.make_net(b, seed), x, y, b, seed)
        last_layer_prior = gold.prior_precision(b)[2 * b.hidden:]
        mean, cov = gaussian_linear_posterior(gold.features(map_net, x), y,
                                              noise_std=b.noise_std,
                                              prior_precision=last_layer_prior)
        _, var = linear_predictive(gold.features(map_net, g), mean, cov)
        ref_var.append(float(var[inside].mean()))
    sizes = [2 * k for k in s.sizes]  # both clusters
    return {"seed": seed, "n": sizes, "mc_dropout_var": mc_var, "reference_var": ref_var,
            "mc_dropout_slope": slope(sizes, mc_var), "reference_slope": slope(sizes, ref_var)}


def statement(s: VISettings, per_seed: list[dict[str, Any]]) -> Statement:
    """[bayes.vi] judged by concentration: rule first, then the measured slopes."""
    mc_m, mc_se = mean_se([r["mc_dropout_slope"] for r in per_seed])
    ref_m, ref_se = mean_se([r["reference_slope"] for r in per_seed])
    conditions = [
        Condition("the reference posterior concentrates on this problem: its slope + 2 se < "
                  f"{MAX_SLOPE}", f"{ref_m:.3f} + 2 x {ref_se:.3f} = {ref_m + 2 * ref_se:.3f}",
                  ref_m + 2 * ref_se < MAX_SLOPE),
        Condition(f"MC dropout's spread concentrates: its slope + 2 se < {MAX_SLOPE}",
                  f"{mc_m:.3f} + 2 x {mc_se:.3f} = {mc_m + 2 * mc_se:.3f}",
                  mc_m + 2 * mc_se < MAX_SLOPE),
        Condition("MC dropout's spread falls at all: its slope + 2 se < 0",
                  f"{mc_m + 2 * mc_se:.3f}", mc_m + 2 * mc_se < 0),
    ]
    if conditions[0].holds and conditions[1].holds:
        verdict = "supported"
    elif conditions[2].holds:
        verdict = "partly supported"
    else:
        verdict = "not supported"
    criterion = (
        "The derivation is not re-checked; its consequence is: a posterior concentrates as the "
        "data grow. Slope = least-squares slope of log(mean epistemic variance in the data "
        f"region) against log(n), per seed, at a fixed dropout rate p = {s.p} (a posterior: "
        f"about -1). Supported if the reference posterior's slope + 2 se < {MAX_SLOPE} (the "
        f"problem can show concentration) and MC dropout's slope + 2 se < {MAX_SLOPE}; partly "
        "supported if MC dropout's slope + 2 se < 0 (its spread falls, slower than half a "
        "posterior's rate, or the reference does not concentrate); otherwise not supported.")
    numbers = {"mc_dropout_slope": {"mean": mc_m, "se": mc_se},
               "reference_slope": {"mean": ref_m, "se": ref_se},
               "n": per_seed[0]["n"], "p": s.p,
               "mc_dropout_var_mean": _column_means(per_seed, "mc_dropout_var"),
               "reference_var_mean": _column_means(per_seed, "reference_var")}
    return Statement("bayes.vi", "bayesian", TEXT, verdict, criterion, conditions, numbers)


def _column_means(per_seed: list[dict[str, Any]], key: str) -> list[float]:
    return [sum(col) / len(col) for col in zip(*(r[key] for r in per_seed), strict=True)]


def figure(per_seed: list[dict[str, Any]]) -> Figure:
    """Epistemic variance in the data region against n (log-log), per seed, both methods."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, r in enumerate(per_seed):
        ax.plot(r["n"], r["mc_dropout_var"], "o-", color="C0", alpha=0.6,
                label="MC dropout (fixed p)" if i == 0 else None)
        ax.plot(r["n"], r["reference_var"], "s--", color="C1", alpha=0.6,
                label="exact last-layer posterior" if i == 0 else None)
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    # the sizes themselves as ticks: log-axis minor labels (3x10^1, 4x10^1, ...) ran together
    ax.set_xticks(per_seed[0]["n"])
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(yscale="log", xlabel="training points n",
           ylabel="mean epistemic variance in the data region",
           title="[bayes.vi] does the spread concentrate as data grow?")
    ax.legend(fontsize=8)
    return Figure("bayesian_vi_concentration", figure_png(fig),
                  "Epistemic variance where the data are, against the number of training "
                  "points (one line per seed): a posterior's falls about like 1/n.")
