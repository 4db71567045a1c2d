"""Metrics for predictions with uncertainty: a pure function per metric, ``(preds, target)``.

Classification metrics take a required keyword ``from_logits``; all accept torch tensors or
numpy arrays and return Python floats or small dataclasses of tensors. Streaming objects
(``update``/``compute``/``reset``) exist where a metric can be accumulated: ``Accuracy``,
``NegativeLogLikelihood``, ``BrierScore``, ``CalibrationError``, ``RMSE``, ``GaussianNLL``,
``IntervalCoverage``. Ranking metrics (``auroc``, ``aupr``, ``aurc``) need all scores at once
and have no object: concatenate the batches and call the function.
"""

from dropkit.metrics.calibration import (
    CalibrationBins,
    CalibrationError,
    calibration_bins,
    expected_calibration_error,
)
from dropkit.metrics.classification import (
    Accuracy,
    BrierScore,
    NegativeLogLikelihood,
    accuracy,
    brier_score,
    negative_log_likelihood,
)
from dropkit.metrics.detection import aupr, auroc
from dropkit.metrics.regression import (
    RMSE,
    GaussianNLL,
    IntervalCoverage,
    gaussian_nll,
    interval_coverage,
    rmse,
)
from dropkit.metrics.selective import RiskCoverageCurve, aurc, risk_coverage_curve

__all__ = [
    "accuracy",
    "negative_log_likelihood",
    "brier_score",
    "Accuracy",
    "NegativeLogLikelihood",
    "BrierScore",
    "CalibrationBins",
    "calibration_bins",
    "expected_calibration_error",
    "CalibrationError",
    "auroc",
    "aupr",
    "RiskCoverageCurve",
    "risk_coverage_curve",
    "aurc",
    "rmse",
    "gaussian_nll",
    "interval_coverage",
    "RMSE",
    "GaussianNLL",
    "IntervalCoverage",
]
