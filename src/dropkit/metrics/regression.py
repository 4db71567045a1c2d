"""Regression metrics: error, Gaussian likelihood and interval coverage (averaged over all
entries, so ``(B,)`` and ``(B, D)`` inputs both work).

Each metric is a pure function here and a streaming ``torchmetrics.Metric`` in ``streaming.py``,
both over the same private per-entry function below.
"""

from __future__ import annotations

import math

import torch

from dropkit._validate import check_probability
from dropkit.errors import DropkitValueError, expected
from dropkit.metrics._inputs import ArrayLike, float_tensor

__all__ = ["rmse", "gaussian_nll", "interval_coverage"]


def _same_shape(first: str, a: ArrayLike, others: dict[str, ArrayLike]) -> list[torch.Tensor]:
    """``a`` and every other tensor: finite, floating, non-empty, all of ``a``'s shape."""
    a = float_tensor(first, a)
    out = [a]
    for name, x in others.items():
        out.append(float_tensor(name, x, shape=tuple(a.shape), like=first))
    # float64 throughout: the results are Python floats and the inputs are small
    return [x.double() for x in out]


def _check_level(level: object) -> float:
    level = check_probability("level", level)
    if level == 0.0:
        raise DropkitValueError(expected("level", "a float in (0, 1)", level))
    return level


def _squared_error(preds: ArrayLike, target: ArrayLike) -> torch.Tensor:
    preds, target = _same_shape("preds", preds, {"target": target})
    return (preds - target) ** 2


def _gaussian_nll_entries(mean: ArrayLike, var: ArrayLike, target: ArrayLike) -> torch.Tensor:
    mean, var, target = _same_shape("mean", mean, {"var": var, "target": target})
    if not bool((var > 0).all()):
        raise DropkitValueError(
            expected("var", "strictly positive variances", f"min {float(var.min()):.4g}")
        )
    return 0.5 * (math.log(2 * math.pi) + var.log()) + (target - mean) ** 2 / (2 * var)


def _inside(mean: ArrayLike, std: ArrayLike, target: ArrayLike, level: float) -> torch.Tensor:
    mean, std, target = _same_shape("mean", mean, {"std": std, "target": target})
    if not bool((std >= 0).all()):
        raise DropkitValueError(
            expected("std", "non-negative standard deviations", f"min {float(std.min()):.4g}")
        )
    z = float(torch.special.ndtri(torch.tensor(0.5 + level / 2, dtype=torch.float64)))
    return ((target - mean).abs() <= z * std).double()


def rmse(preds: ArrayLike, target: ArrayLike) -> float:
    r"""Root mean squared error.

    .. math:: \mathrm{RMSE} = \sqrt{\frac{1}{N}\sum_i (\hat y_i - y_i)^2}

    Shape:
        - preds, target: the same shape, e.g. ``(B,)`` or ``(B, D)``.
    """
    return math.sqrt(float(_squared_error(preds, target).mean()))


def gaussian_nll(mean: ArrayLike, var: ArrayLike, target: ArrayLike) -> float:
    r"""Mean negative log-likelihood of ``target`` under ``N(mean, var)`` (in nats).

    .. math:: \mathrm{NLL} = \frac{1}{N}\sum_i \tfrac12 \log(2\pi\sigma_i^2)
              + \frac{(y_i - \mu_i)^2}{2\sigma_i^2}

    ``var`` must be strictly positive (no clamp). Equals
    ``torch.nn.functional.gaussian_nll_loss(mean, target, var, full=True)`` for ``var`` above
    that function's ``eps``. For MC-dropout predictions pass ``uncertainty.total_variance``, or
    score the full mixture with ``uncertainty.gaussian_mixture_log_likelihood``.

    Shape:
        - mean, var, target: the same shape, e.g. ``(B,)`` or ``(B, D)``.
    """
    return float(_gaussian_nll_entries(mean, var, target).mean())


def interval_coverage(mean: ArrayLike, std: ArrayLike, target: ArrayLike, *,
                      level: float = 0.95) -> float:
    r"""Fraction of targets inside the central Gaussian interval ``mean ± z std``.

    .. math:: z = \Phi^{-1}\big(\tfrac{1 + \mathrm{level}}{2}\big),\quad
              \mathrm{cov} = \frac{1}{N}\sum_i [\,|y_i - \mu_i| \le z\,\sigma_i\,]

    A calibrated Gaussian predictor covers about ``level`` of the targets. ``z`` comes from
    ``torch.special.ndtri`` (1.959964 for 0.95).

    Shape:
        - mean, std, target: the same shape, e.g. ``(B,)`` or ``(B, D)``.
    """
    return float(_inside(mean, std, target, _check_level(level)).mean())
