"""Greedy BatchBALD (Kirsch, van Amersfoort & Gal, NeurIPS 2019) on MC samples ``(S, B, C)``.

BatchBALD scores a batch by the mutual information between its joint labels and the weights,

    a(x_1..x_n) = H[y_1..y_n] - sum_i E_w H[y_i | w],

with the joint predictive p(y_1..y_n) = 1/S sum_s prod_i p_s(y_i). The batch is built greedily:
step n adds the candidate that maximises a(A + {x}). The joint entropy is exact while the
number of label configurations C^n is at most ``num_configs`` (a matrix ``(S, C^n)`` of
per-sample joint probabilities); beyond it, as in the paper, ``num_configs`` configurations of
the chosen points are drawn from their joint (a weight sample, then each label from it), and

    H[y_A, y] ≈ -1/M sum_m sum_y p(y | ŷ_A^m) log p(ŷ_A^m, y).

Everything is float64: joint probabilities are products of n probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dropkit import uncertainty as U
from dropkit._validate import check_positive_int
from dropkit.errors import DropkitValueError, expected

#: Candidates scored at once (bounds the (K, M, C) joint tensor).
_BLOCK = 64


@dataclass(frozen=True)
class BatchBALDResult:
    """The chosen indices in order and the BatchBALD value a(x_1..x_n) after each step."""

    indices: torch.Tensor  # (k,) int64
    scores: torch.Tensor  # (k,) float64
    exact_steps: int  # steps whose joint entropy was computed exactly


def _joint_entropy(weights: torch.Tensor, probs: torch.Tensor,
                   norm: torch.Tensor | None) -> torch.Tensor:
    """H[y_A, y_k] for every candidate k.

    weights ``(S, M)``: per-sample probability of each (exact or sampled) configuration of A.
    probs ``(K, S, C)``. norm ``(M,)``: None when exact, else p(ŷ^m) for the sampled estimator.
    """
    s = weights.shape[0]
    out = []
    for start in range(0, probs.shape[0], _BLOCK):
        joint = torch.einsum("sm,ksc->kmc", weights, probs[start:start + _BLOCK]) / s
        plogp = torch.special.xlogy(joint, joint)  # (K, M, C)
        if norm is None:
            out.append(-plogp.sum(dim=(1, 2)))
        else:
            out.append(-(plogp / norm[None, :, None]).sum(dim=(1, 2)) / norm.shape[0])
    return torch.cat(out)


def batchbald(samples: torch.Tensor, k: int, *, from_logits: bool, num_configs: int = 10_000,
              generator: torch.Generator | None = None) -> BatchBALDResult:
    """Choose ``k`` of the B candidates greedily by BatchBALD.

    Args:
        samples: ``(S, B, C)`` logits (``from_logits=True``) or probabilities of the candidates
            (pre-filter a large pool, e.g. to the top BALD points, before calling this).
        k: batch size, at most B.
        num_configs: exact joint entropy while C^n <= num_configs; then that many sampled
            configurations.
        generator: source of the sampled configurations (only used past the exact steps).

    Returns:
        `BatchBALDResult`; ``indices`` index the B candidates.
    """
    k = check_positive_int("k", k)
    num_configs = check_positive_int("num_configs", num_configs)
    cond = U.expected_entropy(samples, from_logits=from_logits).double()  # checks samples, (B,)
    s, b, c = samples.shape
    if k > b:
        raise DropkitValueError(expected("k", f"at most the number of candidates {b}", k))
    x = samples.double()
    probs = (torch.softmax(x, -1) if from_logits else x.clamp(0.0, 1.0)).transpose(0, 1)
    # probs: (S, B, C) -> (B, S, C)
    weights = torch.ones(s, 1, dtype=torch.float64)  # (S, M): the empty configuration
    norm: torch.Tensor | None = None
    source: torch.Tensor | None = None  # (M,) the weight sample each configuration came from
    chosen: list[int] = []
    values: list[float] = []
    cond_sum = 0.0
    exact_steps = 0
    available = torch.ones(b, dtype=torch.bool)
    for _ in range(k):
        gain = _joint_entropy(weights, probs, norm) - cond  # a(A+{x}) + sum_A E H, (B,)
        gain[~available] = -torch.inf
        best = int(torch.argmax(gain))  # first index among ties
        chosen.append(best)
        available[best] = False
        cond_sum += float(cond[best])
        values.append(float(gain[best]) + float(cond[best]) - cond_sum)
        p_best = probs[best]  # (S, C)
        if norm is None and weights.shape[1] * c <= num_configs:
            exact_steps += 1
            weights = (weights[:, :, None] * p_best[:, None, :]).reshape(s, -1)  # (S, M*C)
            continue
        if norm is None:  # switch to sampled configurations of the chosen points
            exact_steps += 1
            source = torch.randint(s, (num_configs,), generator=generator)
            weights = torch.ones(s, num_configs, dtype=torch.float64)
            for idx in chosen[:-1]:
                weights = weights * _draw(probs[idx], source, generator)
        assert source is not None
        weights = weights * _draw(p_best, source, generator)
        norm = weights.mean(dim=0)  # p(ŷ^m), (M,)
    return BatchBALDResult(torch.tensor(chosen, dtype=torch.int64),
                           torch.tensor(values, dtype=torch.float64), exact_steps)


def _draw(p: torch.Tensor, source: torch.Tensor, generator: torch.Generator | None
          ) -> torch.Tensor:
    """Draw one label per configuration from its weight sample; return p_s(label), (S, M)."""
    labels = torch.multinomial(p[source], 1, generator=generator).squeeze(1)  # (M,)
    return p[:, labels]  # (S, M)
