"""dropkit: dropout done right, as a regularizer, an implicit ensemble and approximate Bayesian
inference (Monte Carlo dropout) for any PyTorch model.

The public names load on first use (PEP 562), so ``import dropkit`` and ``dropkit --help`` do
not import torch; ``dropkit.MCDropout`` (or ``from dropkit import sample``) imports what it
needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dropkit import _log  # noqa: F401 - installs the package logger's NullHandler
from dropkit.errors import DropkitError, DropkitTypeError, DropkitValueError, NoDropoutError

if TYPE_CHECKING:
    from dropkit import diagnose, functional, metrics, nn, uncertainty
    from dropkit.diagnose import lint, recalibrate_bn, variance_shift
    from dropkit.inspection.discover import DropoutSite, find_dropout
    from dropkit.mc.mcdropout import MCDropout
    from dropkit.mc.mode import MCModeReport, mc_mode
    from dropkit.mc.prediction import ClassificationPrediction, Prediction, RegressionPrediction
    from dropkit.mc.sampling import sample

__version__ = "0.1.0"

#: public name -> the module that defines it (a submodule when the name is the module itself)
_LAZY: dict[str, str] = {
    "diagnose": "dropkit.diagnose",
    "functional": "dropkit.functional",
    "metrics": "dropkit.metrics",
    "nn": "dropkit.nn",
    "uncertainty": "dropkit.uncertainty",
    "lint": "dropkit.diagnose",
    "recalibrate_bn": "dropkit.diagnose",
    "variance_shift": "dropkit.diagnose",
    "DropoutSite": "dropkit.inspection.discover",
    "find_dropout": "dropkit.inspection.discover",
    "MCDropout": "dropkit.mc.mcdropout",
    "MCModeReport": "dropkit.mc.mode",
    "mc_mode": "dropkit.mc.mode",
    "ClassificationPrediction": "dropkit.mc.prediction",
    "Prediction": "dropkit.mc.prediction",
    "RegressionPrediction": "dropkit.mc.prediction",
    "sample": "dropkit.mc.sampling",
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'dropkit' has no attribute {name!r}")
    module = importlib.import_module(target)
    value = module if target == f"dropkit.{name}" else getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
