"""Top-label calibration: reliability-diagram bins and the expected calibration error (ECE).

One pipeline: ``(preds, target) -> (confidence, correct) -> bin edges -> per-bin sums ->``
:class:`CalibrationBins` ``-> ECE``. The function :func:`expected_calibration_error` and the
streaming ``torchmetrics.Metric`` ``CalibrationError`` (``streaming.py``) both run it.

Bins are half-open ``[lower, upper)`` except the last, which is closed ``[lower, 1]``. (The
torchmetrics implementation puts a confidence of exactly 1.0 into an extra bin of its own;
otherwise the two agree.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dropkit._validate import check_choice, check_positive_int
from dropkit.metrics._inputs import ArrayLike, class_inputs

__all__ = ["CalibrationBins", "calibration_bins", "expected_calibration_error", "BINNINGS",
           "NORMS"]

BINNINGS = ("width", "mass")
NORMS = ("l1", "l2", "max")


@dataclass(frozen=True)
class CalibrationBins:
    """Per-bin statistics of top-label confidence, what a reliability diagram draws.

    All fields are float64 tensors of shape ``(n_bins,)``; ``confidence`` and ``accuracy`` are
    NaN in empty bins (``count == 0``).
    """

    lower: torch.Tensor
    upper: torch.Tensor
    count: torch.Tensor
    confidence: torch.Tensor
    accuracy: torch.Tensor

    def calibration_error(self, norm: str = "l1") -> float:
        r"""Calibration error over the non-empty bins, weights ``w_k = n_k / N``.

        .. math:: \mathrm{l1} = \sum_k w_k |\mathrm{acc}_k - \mathrm{conf}_k|,\quad
                  \mathrm{l2} = \sqrt{\textstyle\sum_k w_k (\mathrm{acc}_k - \mathrm{conf}_k)^2},
                  \quad \mathrm{max} = \max_k |\mathrm{acc}_k - \mathrm{conf}_k|
        """
        check_choice("norm", norm, NORMS)
        full = self.count > 0
        gap = (self.accuracy[full] - self.confidence[full]).abs()
        weight = self.count[full] / self.count.sum()
        if norm == "l1":
            return float((weight * gap).sum())
        if norm == "l2":
            return float((weight * gap**2).sum().sqrt())
        return float(gap.max())


def _top_label(preds: ArrayLike, target: ArrayLike, from_logits: bool
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-label confidence ``max_c p_c`` and correctness, both ``(B,)``."""
    probs, _, target = class_inputs(preds, target, from_logits)
    confidence, predicted = probs.max(dim=-1)
    return confidence, (predicted == target).to(confidence.dtype)


def _width_edges(n_bins: int, dtype: torch.dtype,
                 device: torch.device | None = None) -> torch.Tensor:
    return torch.linspace(0.0, 1.0, n_bins + 1, dtype=dtype, device=device)


def _mass_edges(confidence: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Edges 0, q_{1/n}, ..., q_{(n-1)/n}, 1 from the linearly interpolated sample quantiles.

    Written out (not ``torch.quantile``) because that has an input size limit.
    """
    ordered = confidence.double().sort().values
    # position k (N - 1) / n_bins split exactly in integers: an edge that falls on a data
    # point must equal it, or that point would slip into the neighbouring bin
    steps = torch.arange(1, n_bins, dtype=torch.int64, device=ordered.device)
    scaled = steps * (len(ordered) - 1)
    lo = torch.div(scaled, n_bins, rounding_mode="floor")
    frac = (scaled - lo * n_bins).double() / n_bins
    hi = (lo + 1).clamp_max(len(ordered) - 1)
    inner = ordered[lo] + frac * (ordered[hi] - ordered[lo])
    edges = torch.cat([inner.new_zeros(1), inner, inner.new_ones(1)])
    return edges.to(confidence.dtype)


def _bin_sums(confidence: torch.Tensor, correct: torch.Tensor, edges: torch.Tensor
              ) -> torch.Tensor:
    """``(3, n_bins)`` float64 rows: count, sum of confidence, sum of correct."""
    n_bins = len(edges) - 1
    # bin k holds edges[k] <= conf < edges[k+1]; conf == 1 falls in the last bin
    index = torch.bucketize(confidence, edges[1:-1], right=True)  # (B,) in [0, n_bins)
    sums = torch.zeros(3, n_bins, dtype=torch.float64, device=confidence.device)
    sums[0].index_add_(0, index, torch.ones_like(confidence, dtype=torch.float64))
    sums[1].index_add_(0, index, confidence.double())
    sums[2].index_add_(0, index, correct.double())
    return sums


def _bins_from_sums(edges: torch.Tensor, sums: torch.Tensor) -> CalibrationBins:
    count = sums[0]
    safe = count.clamp_min(1.0)
    empty = count == 0
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    return CalibrationBins(
        lower=edges[:-1].double(),
        upper=edges[1:].double(),
        count=count,
        confidence=torch.where(empty, nan, sums[1] / safe),
        accuracy=torch.where(empty, nan, sums[2] / safe),
    )


def _bins(confidence: torch.Tensor, correct: torch.Tensor, n_bins: int, binning: str
          ) -> CalibrationBins:
    if binning == "width":
        edges = _width_edges(n_bins, confidence.dtype, confidence.device)
    else:
        edges = _mass_edges(confidence, n_bins)
    return _bins_from_sums(edges, _bin_sums(confidence, correct, edges))


def calibration_bins(preds: ArrayLike, target: ArrayLike, *, from_logits: bool,
                     n_bins: int = 15, binning: str = "width") -> CalibrationBins:
    """Reliability-diagram bins of top-label confidence ``max_c p_c``.

    ``binning="width"``: ``n_bins`` equal-width bins on [0, 1]. ``binning="mass"``: edges at
    the ``k / n_bins`` quantiles of the confidences (linear interpolation), outer edges 0 and 1,
    so that the bins hold about equal counts (ties can leave bins empty).

    Shape:
        - preds: ``(B, C)`` logits (``from_logits=True``) or probabilities.
        - target: ``(B,)`` integer class indices in ``[0, C)``.
        - output fields: ``(n_bins,)``.
    """
    n_bins = check_positive_int("n_bins", n_bins)
    binning = check_choice("binning", binning, BINNINGS)
    confidence, correct = _top_label(preds, target, from_logits)
    return _bins(confidence, correct, n_bins, binning)


def expected_calibration_error(preds: ArrayLike, target: ArrayLike, *, from_logits: bool,
                               n_bins: int = 15, binning: str = "width",
                               norm: str = "l1") -> float:
    r"""Expected calibration error of the top-label confidence.

    .. math:: \mathrm{ECE} = \sum_k \frac{n_k}{N} \big|\mathrm{acc}_k - \mathrm{conf}_k\big|

    over the bins of :func:`calibration_bins` (``norm="l2"`` and ``"max"`` as in
    :meth:`CalibrationBins.calibration_error`). With ``binning="width"`` and ``norm="l1"`` it
    equals torchmetrics' ``multiclass_calibration_error``.

    Shape:
        - preds: ``(B, C)`` logits (``from_logits=True``) or probabilities.
        - target: ``(B,)`` integer class indices in ``[0, C)``.
    """
    norm = check_choice("norm", norm, NORMS)
    bins = calibration_bins(preds, target, from_logits=from_logits, n_bins=n_bins,
                            binning=binning)
    return bins.calibration_error(norm)
