"""Pick a batch of pool indices from per-example scores: top-k or stochastic (Kirsch et al.).

Top-k takes the k highest scores; ties go to the lower index, so it is reproducible with no
seed. It is also redundant: near-duplicate points score alike and are taken together.
Kirsch, Farquhar, Atighehchian, Jesson, Branchaud-Charron & Gal ("Stochastic Batch
Acquisition: A Simple Baseline for Deep Active Learning", TMLR 2023) instead draw k points
without replacement with probabilities

- ``"softmax"``: p_i ∝ exp(β s_i)
- ``"power"``:   p_i ∝ s_i^β           (scores must be >= 0; BALD, entropy, ...)
- ``"softrank"``: p_i ∝ rank_i^(-β)    (rank 1 = highest score)

Drawing without replacement is done with the Gumbel-top-k trick: the k largest of
``log p_i + G_i`` (G_i standard Gumbel from ``generator``) are an exact sample of that law.
"""

from __future__ import annotations

import torch

from dropkit._validate import check_choice, check_positive_int, check_tensor
from dropkit.errors import DropkitValueError, expected

SELECTIONS = ("topk", "softmax", "power", "softrank")


def _check_scores(scores: object, k: int) -> torch.Tensor:
    scores = check_tensor("scores", scores)
    if scores.dim() != 1 or not scores.is_floating_point():
        raise DropkitValueError(expected("scores", "a 1-D floating tensor (B,)",
                                         f"shape {tuple(scores.shape)}, dtype {scores.dtype}"))
    if bool(torch.isnan(scores).any()):
        raise DropkitValueError(expected("scores", "no NaN", f"{int(scores.isnan().sum())} NaN"))
    if k > scores.shape[0]:
        raise DropkitValueError(expected("k", f"at most the pool size {scores.shape[0]}", k))
    return scores.double()


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` highest scores, best first; ties go to the lower index."""
    k = check_positive_int("k", k)
    scores = _check_scores(scores, k)
    return torch.sort(scores, descending=True, stable=True).indices[:k]


def log_weights(scores: torch.Tensor, selection: str, beta: float = 1.0) -> torch.Tensor:
    """``log p_i`` (up to a constant) of a stochastic selection rule, ``(B,)`` float64."""
    selection = check_choice("selection", selection, SELECTIONS[1:])
    if selection == "softmax":
        return beta * scores
    if selection == "power":
        if bool((scores < 0).any()):
            raise DropkitValueError(expected(
                "scores", "non-negative scores for selection='power' (use 'softmax' or "
                "'softrank' for signed scores such as margin)", f"min {float(scores.min()):.4g}"))
        return beta * torch.log(scores)  # a zero score is never drawn before positive ones
    ranks = torch.empty_like(scores)
    ranks[torch.sort(scores, descending=True, stable=True).indices] = torch.arange(
        1, scores.shape[0] + 1, dtype=scores.dtype)
    return -beta * torch.log(ranks)


def select(scores: torch.Tensor, k: int, *, selection: str = "topk", beta: float = 1.0,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """``k`` distinct indices chosen by ``selection`` (see the module doc), ``(k,)`` int64.

    Stochastic rules draw from ``generator``: the same generator state gives the same batch.
    """
    selection = check_choice("selection", selection, SELECTIONS)
    k = check_positive_int("k", k)
    scores = _check_scores(scores, k)
    if selection == "topk":
        return top_k(scores, k)
    if not (isinstance(beta, (int, float)) and not isinstance(beta, bool) and beta > 0):
        raise DropkitValueError(expected("beta", "a positive float (inverse temperature)", beta))
    logw = log_weights(scores, selection, float(beta))
    u = torch.rand(scores.shape[0], generator=generator, dtype=torch.float64)
    gumbel = -torch.log(-torch.log(u.clamp_min(1e-300)))  # standard Gumbel
    return top_k(logw + gumbel, k)
