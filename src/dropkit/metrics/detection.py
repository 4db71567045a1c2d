"""Detection by a score: AUROC and AUPR (e.g. uncertainty vs "is OOD" or "is wrong")."""

from __future__ import annotations

import torch

from dropkit.metrics._binary import descending_groups, scores_and_labels
from dropkit.metrics._inputs import ArrayLike

__all__ = ["auroc", "aupr"]


def _average_ranks(x: torch.Tensor) -> torch.Tensor:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = torch.argsort(x, stable=True)
    _, inverse, counts = torch.unique_consecutive(x[order], return_inverse=True,
                                                   return_counts=True)
    ends = torch.cumsum(counts, 0).double()  # rank of each group's last member
    group_rank = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(x, dtype=torch.float64)
    ranks[order] = group_rank[inverse]
    return ranks


def auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    r"""Area under the ROC curve; a higher score means "more likely positive".

    Computed as the Mann-Whitney statistic with average ranks, so ties count one half:

    .. math:: \mathrm{AUROC} = P(s^+ > s^-) + \tfrac12 P(s^+ = s^-)
              = \frac{R_+ - n_+(n_+ + 1)/2}{n_+ n_-}

    where ``R_+`` is the sum of the positives' ranks. Raises if ``labels`` hold one class only.

    Shape:
        - scores: ``(B,)`` floats.
        - labels: ``(B,)`` 0/1 or bool.
    """
    scores, labels = scores_and_labels("scores", scores, "labels", labels, need_both=True)
    n_pos = float(labels.sum())
    n_neg = len(labels) - n_pos
    rank_sum = float(_average_ranks(scores)[labels].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def aupr(scores: ArrayLike, labels: ArrayLike) -> float:
    r"""Area under the precision-recall curve as average precision (scikit-learn's definition).

    .. math:: \mathrm{AP} = \sum_k (R_k - R_{k-1}) P_k

    over the distinct score thresholds in decreasing order (tied scores enter together), with
    ``R_0 = 0``; no interpolation. Raises if ``labels`` hold one class only.

    Shape:
        - scores: ``(B,)`` floats.
        - labels: ``(B,)`` 0/1 or bool.
    """
    scores, labels = scores_and_labels("scores", scores, "labels", labels, need_both=True)
    _, n_above, tp = descending_groups(scores, labels)
    precision = tp / n_above
    recall = tp / tp[-1]
    gain = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((gain * precision).sum())
