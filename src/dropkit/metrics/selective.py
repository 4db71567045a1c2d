"""Selective prediction: the risk-coverage curve and the area under it (AURC)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dropkit.metrics._binary import descending_groups, scores_and_labels
from dropkit.metrics._inputs import ArrayLike

__all__ = ["RiskCoverageCurve", "risk_coverage_curve", "aurc"]


@dataclass(frozen=True)
class RiskCoverageCurve:
    """Points of the risk-coverage curve, one per distinct confidence, highest first.

    ``coverage[k]`` is the fraction of inputs with confidence ``>= threshold[k]`` (increasing to
    1) and ``risk[k]`` the error rate among them. All float64 tensors of equal length.
    """

    threshold: torch.Tensor
    coverage: torch.Tensor
    risk: torch.Tensor


def risk_coverage_curve(confidence: ArrayLike, correct: ArrayLike) -> RiskCoverageCurve:
    r"""Selective risk at each coverage, accepting inputs in order of decreasing confidence.

    .. math:: \mathrm{cov}(t) = \frac{\#\{c_i \ge t\}}{N},\quad
              \mathrm{risk}(t) = \frac{\#\{c_i \ge t,\ \text{wrong}_i\}}{\#\{c_i \ge t\}}

    Tied confidences are accepted together (one point per distinct confidence), so the curve
    does not depend on the order of ties.

    Shape:
        - confidence: ``(B,)`` floats (higher = more confident).
        - correct: ``(B,)`` 0/1 or bool.
        - output fields: ``(K,)``, K the number of distinct confidences.
    """
    confidence, correct = scores_and_labels("confidence", confidence, "correct", correct,
                                            need_both=False)
    threshold, n_above, right = descending_groups(confidence, correct)
    return RiskCoverageCurve(threshold=threshold, coverage=n_above / len(confidence),
                             risk=(n_above - right) / n_above)


def aurc(confidence: ArrayLike, correct: ArrayLike) -> float:
    r"""Area under the risk-coverage curve (lower is better).

    .. math:: \mathrm{AURC} = \sum_k (\mathrm{cov}_k - \mathrm{cov}_{k-1})\,\mathrm{risk}_k,
              \quad \mathrm{cov}_0 = 0

    Without ties this is ``(1/N) sum_{n=1}^N risk@n``, the mean selective risk over the N
    coverage levels (Geifman et al., 2019); tied confidences share one step.

    Shape:
        - confidence: ``(B,)`` floats (higher = more confident).
        - correct: ``(B,)`` 0/1 or bool.
    """
    curve = risk_coverage_curve(confidence, correct)
    width = torch.diff(curve.coverage, prepend=curve.coverage.new_zeros(1))
    return float((width * curve.risk).sum())
