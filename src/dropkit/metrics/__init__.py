"""Metrics for predictions with uncertainty: a pure function per metric, ``(preds, target)``.

Classification metrics take a required keyword ``from_logits``; all accept torch tensors or
numpy arrays and return Python floats or small dataclasses of tensors. The streaming objects
``Accuracy``, ``NegativeLogLikelihood``, ``BrierScore``, ``CalibrationError``, ``RMSE``,
``GaussianNLL``, ``IntervalCoverage`` are ``torchmetrics.Metric`` objects (DDP sync,
``MetricCollection``, Lightning's ``self.log``) over the same private rows as the functions;
they are loaded on first use and need ``pip install 'dropkit[metrics]'``, so the functions and
``import dropkit`` never import torchmetrics (whose import costs seconds). Ranking metrics
(``auroc``, ``aupr``, ``aurc``) need all scores at once and have no object here: concatenate
the batches and call the function (torchmetrics' ``BinaryAUROC`` and
``BinaryAveragePrecision`` stream the first two and give the same values).
"""

from __future__ import annotations

import importlib
from typing import Any

from dropkit.metrics.calibration import (
    CalibrationBins,
    calibration_bins,
    expected_calibration_error,
)
from dropkit.metrics.classification import accuracy, brier_score, negative_log_likelihood
from dropkit.metrics.detection import aupr, auroc
from dropkit.metrics.regression import gaussian_nll, interval_coverage, rmse
from dropkit.metrics.selective import RiskCoverageCurve, aurc, risk_coverage_curve

# the torchmetrics.Metric objects, in streaming.py; imported by __getattr__ on first use
_STREAMING = ("Accuracy", "NegativeLogLikelihood", "BrierScore", "CalibrationError", "RMSE",
              "GaussianNLL", "IntervalCoverage")

__all__ = [
    "accuracy",
    "negative_log_likelihood",
    "brier_score",
    "CalibrationBins",
    "calibration_bins",
    "expected_calibration_error",
    "auroc",
    "aupr",
    "RiskCoverageCurve",
    "risk_coverage_curve",
    "aurc",
    "rmse",
    "gaussian_nll",
    "interval_coverage",
    *_STREAMING,
]


def __getattr__(name: str) -> Any:
    if name not in _STREAMING:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        import torchmetrics  # noqa: F401
    except ImportError as err:
        raise ImportError(f"dropkit.metrics.{name} is a torchmetrics.Metric and needs "
                          "torchmetrics: pip install 'dropkit[metrics]'") from err
    return getattr(importlib.import_module("dropkit.metrics.streaming"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_STREAMING))
