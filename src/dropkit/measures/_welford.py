"""Chan et al.'s pairwise merge of Welford's sums, shared by every streaming measure."""

from __future__ import annotations

import torch


def merge(n: int, mean: torch.Tensor | None, m2: torch.Tensor | None, chunk: torch.Tensor
          ) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Merge a chunk ``(c, ...)`` into (count, mean, sum of squared deviations)."""
    c = chunk.shape[0]
    var, cm = torch.var_mean(chunk, dim=0, correction=0)  # one fused pass over the chunk
    cm2 = var.mul_(c)
    if mean is None or m2 is None:
        return c, cm, cm2
    total = n + c
    delta = cm - mean
    return total, mean + delta * (c / total), m2 + cm2 + delta ** 2 * (n * c / total)


def merge_mean(n: int, mean: torch.Tensor | None, chunk: torch.Tensor) -> torch.Tensor:
    """The running mean alone (``n`` earlier values), the same update as `merge`'s."""
    c = chunk.shape[0]
    cm = chunk.mean(dim=0)
    if mean is None:
        return cm
    return mean + (cm - mean) * (c / (n + c))
