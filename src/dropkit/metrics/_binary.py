"""Shared validation for score-vs-binary-label metrics (detection, selective prediction)."""

from __future__ import annotations

import torch

from dropkit.errors import DropkitValueError, expected
from dropkit.metrics._inputs import binary_tensor, float_tensor


def scores_and_labels(score_name: str, scores: object, label_name: str, labels: object,
                      *, need_both: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B,)`` finite float64 scores and ``(B,)`` bool labels (both classes if ``need_both``)."""
    scores = float_tensor(score_name, scores, ndim=1).double()
    labels = binary_tensor(label_name, labels, len(scores), like=score_name)
    if need_both:
        n_pos = int(labels.sum())
        if n_pos == 0 or n_pos == len(labels):
            raise DropkitValueError(
                expected(label_name, "both classes (at least one 0 and one 1)",
                         f"only {int(labels[0])}s in {len(labels)} labels")
            )
    return scores, labels


def descending_groups(scores: torch.Tensor, labels: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sort by decreasing score and cut at each distinct score (ties form one group).

    Returns per-group ``(threshold, n_at_or_above, positives_at_or_above)``, cumulative counts
    in float64, ordered from the highest threshold to the lowest.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    s, y = scores[order], labels[order].double()
    _, counts = torch.unique_consecutive(s, return_counts=True)
    last = torch.cumsum(counts, 0) - 1  # index of each tie group's last element
    n_above = (last + 1).double()
    pos_above = torch.cumsum(y, 0)[last]
    return s[last], n_above, pos_above
