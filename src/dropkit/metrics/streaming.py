"""The streaming metrics: ``torchmetrics.Metric`` objects over the functions' private rows.

Each object runs the same private function as its pure twin (``classification.py``,
``regression.py``, ``calibration.py``), so ``compute()`` equals the function on the
concatenated batches. Being real ``torchmetrics.Metric`` objects, they sync across processes
under DDP (every state is a sum, or a concatenation for equal-mass bins), move with
``.to(device)``, sit in a ``MetricCollection`` and can be passed to Lightning's ``self.log``.
``update`` returns None and ``compute`` a 0-d float64 tensor, as torchmetrics does.

Loaded on first use of one of these names from ``dropkit.metrics``; needs torchmetrics
(``pip install 'dropkit[metrics]'``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from dropkit._validate import check_choice, check_positive_int
from dropkit.errors import DropkitError
from dropkit.measures._checks import check_from_logits as _check_from_logits
from dropkit.metrics._inputs import ArrayLike
from dropkit.metrics._stream import RowMean
from dropkit.metrics.calibration import (
    BINNINGS,
    NORMS,
    CalibrationBins,
    _bin_sums,
    _bins,
    _bins_from_sums,
    _top_label,
    _width_edges,
)
from dropkit.metrics.classification import _brier_rows, _correct_rows, _nll_rows
from dropkit.metrics.regression import _check_level, _gaussian_nll_entries, _inside, _squared_error

__all__ = ["Accuracy", "NegativeLogLikelihood", "BrierScore", "CalibrationError", "RMSE",
           "GaussianNLL", "IntervalCoverage"]


class _ClassRowMean(RowMean):
    """Base of the classification objects; subclasses name their per-row function."""

    _rows: Callable[[ArrayLike, ArrayLike, bool], torch.Tensor]

    def __init__(self, *, from_logits: bool, **kwargs: Any) -> None:
        self.from_logits = _check_from_logits(from_logits)
        super().__init__(**kwargs)

    def update(self, preds: ArrayLike, target: ArrayLike) -> None:
        """Add a batch: ``preds (B, C)``, ``target (B,)``."""
        self._add(type(self)._rows(preds, target, self.from_logits))


class Accuracy(_ClassRowMean):
    """Streaming ``accuracy``: ``m = Accuracy(from_logits=True); m.update(z, y); m.compute()``."""

    higher_is_better = True
    _rows = staticmethod(_correct_rows)


class NegativeLogLikelihood(_ClassRowMean):
    """Streaming ``negative_log_likelihood`` (nats)."""

    higher_is_better = False
    _rows = staticmethod(_nll_rows)


class BrierScore(_ClassRowMean):
    """Streaming ``brier_score``."""

    higher_is_better = False
    _rows = staticmethod(_brier_rows)


class RMSE(RowMean):
    """Streaming ``rmse``: ``update(preds, target)`` per batch, then ``compute()``."""

    higher_is_better = False

    def update(self, preds: ArrayLike, target: ArrayLike) -> None:
        self._add(_squared_error(preds, target))

    def _finish(self, mean: torch.Tensor) -> torch.Tensor:
        return mean.sqrt()


class GaussianNLL(RowMean):
    """Streaming ``gaussian_nll``: ``update(mean, var, target)`` per batch."""

    higher_is_better = False

    def update(self, mean: ArrayLike, var: ArrayLike, target: ArrayLike) -> None:
        self._add(_gaussian_nll_entries(mean, var, target))


class IntervalCoverage(RowMean):
    """Streaming ``interval_coverage``: ``update(mean, std, target)`` per batch."""

    def __init__(self, *, level: float = 0.95, **kwargs: Any) -> None:
        self.level = _check_level(level)
        super().__init__(**kwargs)

    def update(self, mean: ArrayLike, std: ArrayLike, target: ArrayLike) -> None:
        self._add(_inside(mean, std, target, self.level))


class CalibrationError(Metric):
    """Streaming ``expected_calibration_error``: ``update(preds, target)`` per batch.

    With ``binning="width"`` the state is ``3 * n_bins`` sums. Equal-mass edges depend on all
    confidences, so ``binning="mass"`` keeps every ``(confidence, correct)`` pair (memory grows
    with the data; under DDP they are gathered) and bins them in ``compute``. Either way the
    result equals ``expected_calibration_error`` on the concatenated batches.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
    # the states registered by add_state (declared so that nn.Module's __getattr__ types them)
    sums: torch.Tensor
    confidence: list[torch.Tensor]
    correct: list[torch.Tensor]

    def __init__(self, *, from_logits: bool, n_bins: int = 15, binning: str = "width",
                 norm: str = "l1", **kwargs: Any) -> None:
        self.from_logits = _check_from_logits(from_logits)
        self.n_bins = check_positive_int("n_bins", n_bins)
        self.binning = check_choice("binning", binning, BINNINGS)
        self.norm = check_choice("norm", norm, NORMS)
        super().__init__(**kwargs)
        if self.binning == "width":
            self.add_state("sums", torch.zeros(3, self.n_bins, dtype=torch.float64),
                           dist_reduce_fx="sum")
        else:
            self.add_state("confidence", [], dist_reduce_fx="cat")
            self.add_state("correct", [], dist_reduce_fx="cat")

    def update(self, preds: ArrayLike, target: ArrayLike) -> None:
        confidence, correct = _top_label(preds, target, self.from_logits)
        if self.binning == "width":
            edges = _width_edges(self.n_bins, confidence.dtype, confidence.device)
            self.sums += _bin_sums(confidence, correct, edges).to(self.sums.device)
        else:
            self.confidence.append(confidence)
            self.correct.append(correct.double())

    def _local_bins(self) -> CalibrationBins:
        if self.binning == "width":
            if int(self.sums[0].sum()) == 0:
                raise self._nothing_seen()
            return _bins_from_sums(_width_edges(self.n_bins, torch.float64, self.sums.device),
                                   self.sums)
        if len(self.confidence) == 0:
            raise self._nothing_seen()
        confidence, correct = dim_zero_cat(self.confidence), dim_zero_cat(self.correct)
        return _bins(confidence, correct, self.n_bins, "mass")

    def bins(self) -> CalibrationBins:
        """The bins of everything seen since the last ``reset`` (on all processes)."""
        with self.sync_context():
            return self._local_bins()

    def compute(self) -> torch.Tensor:
        """The calibration error as a 0-d float64 tensor."""
        return torch.tensor(self._local_bins().calibration_error(self.norm),
                            dtype=torch.float64, device=self.device)

    @staticmethod
    def _nothing_seen() -> Exception:
        return DropkitError("CalibrationError.compute() called before any update().")
