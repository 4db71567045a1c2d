"""Claim 2: dropout trains an implicit ensemble, and weight scaling at test time averages it.

Two measurements.

*A single softmax layer* ``softmax(W (m * x) / (1 - p) + b)`` with dropout on its ``d`` inputs
has ``2^d`` subnetworks, one per keep mask ``m``, each with probability
``P(m) = (1 - p)^{|m|} p^{d - |m|}``. Because the logits are linear in ``m``, the normalized
weighted geometric mean (NGM) of the subnetworks is exactly the weight-scaled network
(Baldi & Sadowski 2013; Srivastava et al. 2014)::

    NGM_c ∝ exp(Σ_m P(m) log softmax(z_m)_c) ∝ exp(Σ_m P(m) z_m,c) = exp(W x + b)_c

(the log-normaliser of each ``softmax(z_m)`` does not depend on ``c``). The arithmetic mean
``Σ_m P(m) softmax(z_m)`` is what "averaging the ensemble" usually means, and it differs. We
enumerate all masks (d <= 12) and measure both gaps.

*A deeper network* (two ReLU layers with dropout) has no exact identity. We compare the
weight-scaled network with Monte Carlo averages of S = 1..200 dropout samples (test error and
NLL as S grows), several seeds.

The four steps (`dropkit.experiments.claim.ClaimExperiment`): `measure` trains both models of
one seed, `judge` turns the seeds' records into statements, `figures` draws them; no shared part.
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
    Judgement,
    LabConfig,
    mean_se,
    run_experiment,
)
from dropkit.lab.base import judge as base_judge
from dropkit.lab.ensemble_figures import deep_figure, softmax_figure
from dropkit.lab.statements import (
    Condition,
    Statement,
    disagreement,
    effect_conditions,
    effect_statement,
    group_summary,
)
from dropkit.lab.train import TrainConfig, mlp, train

ID = "ensemble"
TITLE = "Dropout as an implicit ensemble; weight scaling as its average"
CLAIM = ("Dropout trains an exponential ensemble of weight-sharing subnetworks, and scaling the "
         "weights at test time approximates averaging their predictions.")


@dataclass(frozen=True)
class EnsembleSettings:
    """Every size, rate and threshold of the experiment (written into the result's
    ``config``)."""

    d: int = 10  # inputs of the softmax layer (PCA components of the digits); 2^d masks
    softmax_rates: tuple[float, ...] = (0.2, 0.5)
    softmax_epochs: int = 60
    softmax_lr: float = 1e-2
    deep_hidden: tuple[int, ...] = (256, 256)
    deep_p: float = 0.5
    deep_epochs: int = 40
    deep_lr: float = 1e-3
    s_grid: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 200)
    # max |NGM - weight scaling| (probabilities, float64) below which the identity "holds"
    exact_tol: float = 1e-9
    # the deep net's weight scaling "approximates" the MC ensemble if its test error is within
    # this many percentage points of MC's at the largest S (clear of seed noise)
    approx_pp: float = 1.0
    # MC "beats" weight scaling if its NLL is lower by more than this (nats), clear of seed noise
    nll_margin: float = 0.005
    # [ens.subnets]: nats per test digit gained by averaging subnetworks
    min_ensemble_nll_gain: float = 0.02

    def quick(self) -> EnsembleSettings:
        """The smoke-test size: fewer inputs, one rate, a few epochs, S up to 10."""
        return replace(self, d=6, softmax_rates=(0.5,), softmax_epochs=5, deep_hidden=(32,),
                       deep_epochs=3, s_grid=(1, 2, 5, 10))


SETTINGS = EnsembleSettings()

# ---------------------------------------------------------------------------------------------
# the single softmax layer: every subnetwork, enumerated
# ---------------------------------------------------------------------------------------------


def all_masks(d: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Every keep mask over ``d`` units, ``(2^d, d)``; row ``k`` is the binary expansion of k."""
    k = torch.arange(2 ** d)
    bits = 2 ** torch.arange(d)
    return ((k[:, None] // bits[None, :]) % 2).to(dtype)  # (M, d)


def mask_weights(masks: torch.Tensor, p: float) -> torch.Tensor:
    """P(m) = (1 - p)^{kept} p^{dropped} for each row of ``masks``, ``(M,)``; sums to 1."""
    kept = masks.sum(dim=1)
    dropped = masks.shape[1] - kept
    return (1.0 - p) ** kept * p ** dropped  # 0 ** 0 = 1: p = 0 puts all weight on "keep all"


def subnetwork_logits(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor,
                      masks: torch.Tensor, p: float) -> torch.Tensor:
    """Logits of every subnetwork, ``z_m = W (m * x) / (1 - p) + b``: ``(M, B, C)``.

    Inverted scaling (what ``torch.nn.Dropout`` trains), so the weight-scaled net is
    ``W x + b``.
    """
    kept = masks[:, None, :] * x[None, :, :] / (1.0 - p)  # (M, 1, D) * (1, B, D) -> (M, B, D)
    return kept @ weight.T + bias  # (M, B, C)


def geometric_mean_probs(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Normalized weighted geometric mean of ``softmax(logits)`` over dim 0: ``(B, C)``."""
    log_p = torch.log_softmax(logits, dim=-1)  # (M, B, C)
    return torch.softmax(torch.einsum("m,mbc->bc", weights, log_p), dim=-1)


def arithmetic_mean_probs(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted arithmetic mean of ``softmax(logits)`` over dim 0: ``(B, C)``."""
    return torch.einsum("m,mbc->bc", weights, torch.softmax(logits, dim=-1))


def total_variation(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per-row total variation distance ``0.5 Σ_c |p_c - q_c|``, ``(B,)``."""
    return 0.5 * (p - q).abs().sum(dim=-1)


def pca_features(x_train: torch.Tensor, x_test: torch.Tensor,
                 d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Project onto the top ``d`` principal components of ``x_train``, scaled to unit variance."""
    mean = x_train.mean(dim=0)
    _, s, vh = torch.linalg.svd((x_train - mean).double(), full_matrices=False)
    scale = s[:d] / math.sqrt(len(x_train) - 1)  # std of each component on the training set
    proj = vh[:d].T / scale  # (D, d)
    return ((x_train - mean).double() @ proj).float(), ((x_test - mean).double() @ proj).float()


def _nll(probs: torch.Tensor, y: torch.Tensor) -> float:
    from dropkit.metrics import negative_log_likelihood

    return negative_log_likelihood(probs, y, from_logits=False)


def _err(probs: torch.Tensor, y: torch.Tensor) -> float:
    from dropkit.metrics import accuracy

    return 100.0 * (1.0 - accuracy(probs, y, from_logits=False))


def softmax_layer(seed: int, p: float, s: EnsembleSettings) -> dict[str, float | list[list[float]]]:
    """Train a dropout softmax layer on PCA digits; compare WS, NGM and AM over all masks."""
    from dropkit.datasets.digits import load_digits

    data = load_digits(seed=seed)
    x_tr, x_te = pca_features(data.flat_train, data.flat_test, s.d)
    torch.manual_seed(seed)
    model = mlp(s.d, [], 10, input_p=p)
    train(model, x_tr, data.y_train,
          TrainConfig(epochs=s.softmax_epochs, lr=s.softmax_lr, seed=seed))
    linear = cast(nn.Linear, model[-1])
    w, b = linear.weight.detach().double(), linear.bias.detach().double()
    x = x_te.double()
    with torch.no_grad():
        ws32 = torch.softmax(model(x_te), dim=-1)  # the trained model in eval mode (float32)
    ws = torch.softmax(x @ w.T + b, dim=-1)  # the same weight-scaled net in float64
    masks = all_masks(s.d)
    weights = mask_weights(masks, p)
    logits = subnetwork_logits(w, b, x, masks, p)  # (M, B, C)
    ngm = geometric_mean_probs(logits, weights)
    am = arithmetic_mean_probs(logits, weights)
    y = data.y_test
    tv = total_variation(am, ws)
    idx = torch.arange(len(y))
    return {
        "max_abs_ngm_minus_ws": float((ngm - ws).abs().max()),
        "max_abs_ws64_minus_model": float((ws - ws32.double()).abs().max()),
        "mean_tv_am_ws": float(tv.mean()),
        "max_tv_am_ws": float(tv.max()),
        "argmax_disagree_am_ws_pct": 100.0 * float((am.argmax(-1) != ws.argmax(-1)).double()
                                                   .mean()),
        "err_ws_pct": _err(ws, y),
        "err_ngm_pct": _err(ngm, y),
        "err_am_pct": _err(am, y),
        "nll_ws": _nll(ws, y),
        "nll_ngm": _nll(ngm, y),
        "nll_am": _nll(am, y),
        # true-class probability under WS vs AM for the scatter plot (first 300 test points)
        "true_prob_ws_am": [[float(ws[i, y[i]]), float(am[i, y[i]])] for i in idx[:300]],
    }


# ---------------------------------------------------------------------------------------------
# the deeper network: Monte Carlo averages of S samples vs weight scaling
# ---------------------------------------------------------------------------------------------


def mc_curve(probs: torch.Tensor, y: torch.Tensor,
             s_grid: tuple[int, ...]) -> tuple[list[float], list[float]]:
    """Test error (%) and NLL of the S-sample MC average, for each S in ``s_grid``.

    ``probs`` holds ``(S_max, B, C)`` sampled probabilities. For each S the pool is cut into
    ``S_max // S`` disjoint blocks of S samples and the metric is averaged over blocks (the
    expected metric of an S-sample average, with less noise than one block).
    """
    errs, nlls = [], []
    for s in s_grid:
        blocks = probs.shape[0] // s
        means = probs[: blocks * s].reshape(blocks, s, *probs.shape[1:]).mean(dim=1)  # (R, B, C)
        errs.append(sum(_err(m, y) for m in means) / blocks)
        nlls.append(sum(_nll(m, y) for m in means) / blocks)
    return errs, nlls


def deep_net(seed: int, s: EnsembleSettings) -> dict[str, float | list[float]]:
    """Train a dropout MLP on digits; MC averages of S = 1..S_max samples vs weight scaling."""
    from dropkit import sample
    from dropkit.datasets.digits import load_digits

    data = load_digits(seed=seed)
    torch.manual_seed(seed)
    model = mlp(64, list(s.deep_hidden), 10, p=s.deep_p)
    train(model, data.flat_train, data.y_train,
          TrainConfig(epochs=s.deep_epochs, lr=s.deep_lr, seed=seed))
    x, y = data.flat_test, data.y_test
    with torch.no_grad():
        ws = torch.softmax(model(x).double(), dim=-1)
    # the MLP returns one tensor, so sample gives one tensor (S, B, C)
    logits = cast(torch.Tensor, sample(model, x, max(s.s_grid), seed=seed)).double()
    probs = torch.softmax(logits, dim=-1)
    errs, nlls = mc_curve(probs, y, s.s_grid)
    am = probs.mean(dim=0)
    gm = torch.softmax(torch.log_softmax(logits, dim=-1).mean(dim=0), dim=-1)
    return {
        "err_ws_pct": _err(ws, y),
        "nll_ws": _nll(ws, y),
        "err_mc_pct": errs,
        "nll_mc": nlls,
        "err_mc_geometric_pct": _err(gm, y),
        "nll_mc_geometric": _nll(gm, y),
        "mean_tv_ws_mc_arith": float(total_variation(ws, am).mean()),
        "mean_tv_ws_mc_geom": float(total_variation(ws, gm).mean()),
        "argmax_agree_ws_mc_pct": 100.0 * float((ws.argmax(-1) == am.argmax(-1)).double().mean()),
    }



# ---------------------------------------------------------------------------------------------
# measure: one seed
# ---------------------------------------------------------------------------------------------


def measure(s: EnsembleSettings, seed: int) -> dict[str, Any]:
    """One seed: the softmax layer at every rate (in ``s.softmax_rates`` order), then the deep
    net. Each seeds its own data split, initialisation, batches and masks from ``seed``."""
    return {"softmax": [softmax_layer(seed, p, s) for p in s.softmax_rates],
            "deep": deep_net(seed, s)}


def _softmax_by_rate(s: EnsembleSettings,
                     per_seed: list[dict[str, Any]]) -> dict[float, list[dict[str, Any]]]:
    """The softmax-layer records by rate, each in seed order."""
    return {p: [r["softmax"][i] for r in per_seed] for i, p in enumerate(s.softmax_rates)}


# ---------------------------------------------------------------------------------------------
# judge: statements, numbers and prose
# ---------------------------------------------------------------------------------------------


def statements(s: EnsembleSettings, max_gap: float, approx_effects: list[float],
               deep: list[dict[str, Any]]) -> list[Statement]:
    """[ens.subnets] and [ens.scaling], each from its own rule (issue 14)."""
    s_grid = s.s_grid
    i_big = len(s_grid) - 1
    out: list[Statement] = []
    if s_grid[0] == 1:
        gain = [r["nll_mc"][0] - r["nll_mc"][i_big] for r in deep]
        err_gain = [r["err_mc_pct"][0] - r["err_mc_pct"][i_big] for r in deep]
        out.append(effect_statement(
            "ens.subnets", ID, "Training with dropout approximates training an exponentially "
            "large ensemble of weight-sharing subnetworks.", gain,
            min_effect=s.min_ensemble_nll_gain, unit="nats",
            what=f"test NLL of one random subnetwork (one dropout mask, S=1) minus that of the "
                 f"average of S={s_grid[-1]} subnetworks of the trained dropout net: averaging "
                 f"its subnetworks gains what averaging an ensemble gains",
            extra={"error_gain_pp_per_seed": err_gain}))
    out.append(_scaling_statement(s, max_gap, approx_effects))
    return out


def _scaling_statement(s: EnsembleSettings, max_gap: float,
                       approx_effects: list[float]) -> Statement:
    """[ens.scaling]: (a) the exact softmax identity and (b) the deep net's approximation."""
    exact = max_gap <= s.exact_tol
    verdict_, conditions, numbers = effect_conditions(approx_effects, 0.0, "pp")
    return Statement(
        id="ens.scaling", group=ID, text="Scaling the weights by the keep probability at test "
        "time approximates averaging the subnetworks' predictions.",
        verdict=("not supported" if not exact else verdict_ if verdict_ == "supported"
                 else "partly supported"),
        criterion=(f"two parts: (a) for a single softmax layer the normalised geometric mean of "
                   f"all 2^d subnetworks equals weight scaling to {s.exact_tol:g} (max abs "
                   f"probability gap); (b) in the deeper net the effect {s.approx_pp:g} pp - "
                   f"|test error(weight scaling) - test error(MC average, largest S)| per seed "
                   f"passes the shared rule (m - 2 se > 0). Supported if (a) holds and (b) is "
                   f"supported; partly supported if (a) holds and (b) is not supported; "
                   f"otherwise (a fails) not supported"),
        conditions=[Condition(f"(a) max gap <= {s.exact_tol:g}", f"{max_gap:.3g}", exact),
                    *[Condition(f"(b) {c.rule}", c.measured, c.holds) for c in conditions]],
        numbers={"softmax_max_abs_ngm_minus_ws": max_gap, "deep_approximation": numbers})


def verdict(s: EnsembleSettings, max_gap: float, approx_effects: list[float]) -> tuple[str, str]:
    """The first edition's rule: exactness of the softmax identity, then the deep-net
    approximation."""
    approx = base_judge(approx_effects, min_effect=0.0,
                        what=f"{s.approx_pp:g} pp - |test error(weight scaling) - test error(MC, "
                             "largest S)| (positive: weight scaling within the tolerance)")
    exact = max_gap <= s.exact_tol
    if exact and approx.verdict == "supported":
        v = "supported"
    elif exact:
        v = "partly supported"
    else:
        v = "not supported"
    criterion = (f"supported if (a) for a single softmax layer the NGM of all 2^d subnetworks "
                 f"equals weight scaling to {s.exact_tol:g} (measured max gap {max_gap:.2g}) and "
                 f"(b) in the deeper net weight scaling is judged 'supported' as approximating "
                 f"the MC ensemble: {approx.criterion} [{approx.verdict}]; partly supported if "
                 f"only (a) holds; not supported if (a) fails")
    return v, criterion


def approximation_effects(s: EnsembleSettings, deep: list[dict[str, Any]]) -> list[float]:
    """Per seed: ``approx_pp - |error(weight scaling) - error(MC, largest S)|`` (pp)."""
    i_big = len(s.s_grid) - 1
    return [s.approx_pp - abs(r["err_ws_pct"] - r["err_mc_pct"][i_big]) for r in deep]


def mc_beats_ws(s: EnsembleSettings, deep: list[dict[str, Any]]) -> Judgement:
    """Does MC at the largest S beat weight scaling in NLL, by ``nll_margin``?"""
    i_big = len(s.s_grid) - 1
    return base_judge([r["nll_ws"] - r["nll_mc"][i_big] for r in deep],
                      min_effect=s.nll_margin,
                      what=f"NLL(weight scaling) - NLL(MC, S={s.s_grid[-1]}) in nats")


def numbers(s: EnsembleSettings, soft: dict[float, list[dict[str, Any]]],
            deep: list[dict[str, Any]], max_gap: float, mc_beats: Judgement) -> dict[str, Any]:
    """Every measured value of the claim, per seed, for ``results.json``."""
    i_big = len(s.s_grid) - 1
    err_gain = mean_se([r["err_ws_pct"] - r["err_mc_pct"][i_big] for r in deep])
    return {
        "softmax_layer": {str(p): {k: [r[k] for r in rs] for k in rs[0] if k != "true_prob_ws_am"}
                          for p, rs in soft.items()},
        "softmax_max_abs_ngm_minus_ws": max_gap,
        "deep": {
            "s_grid": list(s.s_grid),
            **{k: [r[k] for r in deep] for k in deep[0]},
        },
        "deep_error_gain_mc_over_ws_pp": {"mean": err_gain[0], "se": err_gain[1]},
        "mc_beats_ws_nll": {"verdict": mc_beats.verdict, "criterion": mc_beats.criterion,
                            "mean": mc_beats.mean, "se": mc_beats.se},
    }


def key_number(s: EnsembleSettings, soft: dict[float, list[dict[str, Any]]],
               deep: list[dict[str, Any]], max_gap: float, mc_beats: Judgement) -> str:
    """One line for the report's table."""
    i_big = len(s.s_grid) - 1
    p_big = max(s.softmax_rates)
    tv_am = mean_se([r["mean_tv_am_ws"] for r in soft[p_big]])
    nll_ws_m = mean_se([r["nll_ws"] for r in deep])[0]
    nll_mc_m = mean_se([r["nll_mc"][i_big] for r in deep])[0]
    err_ws_m = mean_se([r["err_ws_pct"] for r in deep])[0]
    err_mc_m = mean_se([r["err_mc_pct"][i_big] for r in deep])[0]
    return (f"softmax layer: weight scaling (WS) = geometric mean of all subnetworks "
            f"(max gap {max_gap:.1g}) but not the arithmetic mean (mean TV {tv_am[0]:.3f} at "
            f"p={p_big}); deep net, S={s.s_grid[-1]} MC vs WS: error {err_mc_m:.2f}% vs "
            f"{err_ws_m:.2f}%, NLL {nll_mc_m:.3f} vs {nll_ws_m:.3f} (MC beats WS: "
            f"{mc_beats.verdict})")


def setup(s: EnsembleSettings) -> str:
    return (f"(a) Logistic regression on the top {s.d} PCA components of the digits "
            f"(standardised) with input dropout p in {list(s.softmax_rates)}, "
            f"Adam {s.softmax_epochs} epochs; "
            f"all 2^{s.d} = {2 ** s.d} keep masks enumerated in float64 and weighted by their "
            f"probability. (b) MLP 64-{'-'.join(map(str, s.deep_hidden))}-10 with dropout "
            f"p={s.deep_p} after each hidden layer, Adam {s.deep_epochs} epochs on the digits; "
            f"{s.s_grid[-1]} MC dropout samples of the test set; for each S the metrics are "
            f"averaged over disjoint blocks of S samples. One random train/test split per seed.")


def caveats(s: EnsembleSettings) -> list[str]:
    return [
        "The exact NGM identity needs logits linear in the mask (one softmax layer); in the "
        "deeper net the comparison is with a Monte Carlo estimate of the ensemble, not all masks.",
        "Small data (digits, ~1,250 training images) and small networks; the size of the gap "
        "between weight scaling and MC depends on the rate, depth and training length.",
        f"NLL from probabilities is clamped at 1e-12; MC 'beats' weight scaling only if the NLL "
        f"gain exceeds {s.nll_margin} nats clear of seed noise.",
    ]


def judge(s: EnsembleSettings, per_seed: list[dict[str, Any]],
          shared: dict[str, Any]) -> Judged:
    """[ens.subnets] and [ens.scaling] with the claim's numbers, key number and prose (the
    claim has no shared part: ``shared`` is unused)."""
    soft, deep = _softmax_by_rate(s, per_seed), [r["deep"] for r in per_seed]
    max_gap = max(r["max_abs_ngm_minus_ws"] for rs in soft.values() for r in rs)
    approx = approximation_effects(s, deep)
    _, part_criterion = verdict(s, max_gap, approx)
    judged = statements(s, max_gap, approx, deep)
    _, criterion = group_summary(judged)
    criterion += f" (The first edition's rule: {part_criterion}.)"
    mc_beats = mc_beats_ws(s, deep)
    split = disagreement(judged)
    key = key_number(s, soft, deep, max_gap, mc_beats)
    return Judged(statements=judged, criterion=criterion,
                  key_number=key + (f". {split}" if split else ""),
                  numbers=numbers(s, soft, deep, max_gap, mc_beats), setup=setup(s),
                  caveats=caveats(s))


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------


def figures(s: EnsembleSettings, per_seed: list[dict[str, Any]],
            shared: dict[str, Any]) -> list[Figure]:
    """The MC-vs-weight-scaling curves and the softmax layer's scatter (no training)."""
    return [deep_figure(s, [r["deep"] for r in per_seed]),
            softmax_figure(s, _softmax_by_rate(s, per_seed))]


EXPERIMENT = ClaimExperiment(id=ID, title=TITLE, claim=CLAIM, settings=SETTINGS,
                             measure=measure, judge=judge, figures=figures, shared=None)


def run(cfg: LabConfig) -> ClaimResult:
    """Measure claim 2 (see the module docstring), one seed after another."""
    return run_experiment(EXPERIMENT, cfg)
