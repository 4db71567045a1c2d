"""dropkit: dropout done right, as a regularizer, an implicit ensemble and approximate Bayesian
inference (Monte Carlo dropout) for any PyTorch model."""

from dropkit import diagnose, functional, metrics, nn, uncertainty
from dropkit.diagnose import lint, recalibrate_bn, variance_shift
from dropkit.errors import DropkitError, DropkitTypeError, DropkitValueError, NoDropoutError
from dropkit.inspection.discover import DropoutSite, find_dropout
from dropkit.mc.mcdropout import MCDropout
from dropkit.mc.mode import MCModeReport, mc_mode
from dropkit.mc.prediction import ClassificationPrediction, Prediction, RegressionPrediction
from dropkit.mc.sampling import sample

__version__ = "0.1.0"

__all__ = [
    "ClassificationPrediction",
    "DropkitError",
    "DropkitTypeError",
    "DropkitValueError",
    "DropoutSite",
    "MCDropout",
    "MCModeReport",
    "NoDropoutError",
    "Prediction",
    "RegressionPrediction",
    "__version__",
    "diagnose",
    "find_dropout",
    "functional",
    "lint",
    "mc_mode",
    "metrics",
    "nn",
    "recalibrate_bn",
    "sample",
    "uncertainty",
    "variance_shift",
]
