"""The one validation layer of the uncertainty measures.

The pure functions of `dropkit.uncertainty` and the streaming objects of `dropkit.measures`
both call these checks (the functions only through the streams), so an input is judged the
same way whichever path it takes. Each check raises a DropkitError subclass worded with
`errors.expected`.
"""

from __future__ import annotations

import math

import torch

from dropkit._validate import _describe, check_samples, check_tensor
from dropkit.errors import DropkitTypeError, DropkitValueError, expected


def check_from_logits(from_logits: object) -> bool:
    if not isinstance(from_logits, bool):
        raise DropkitTypeError(
            expected("from_logits", "a bool (True for logits, False for probabilities)",
                     repr(from_logits))
        )
    return from_logits


def working_dtype(x: torch.Tensor) -> torch.Tensor:
    """Half precision is too coarse for logs of small probabilities: compute in float32."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x


def result_dtype(dtype: torch.dtype) -> torch.dtype:
    """Measures are accumulated in float64 and returned in float64 or float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def probability_tolerance(dtype: torch.dtype) -> float:
    """Slack allowed on ``p in [0, 1]`` and ``sum_c p = 1``: 1e-4, more for coarse dtypes."""
    return max(1e-4, 10.0 * torch.finfo(dtype).eps)


def check_probability_rows(name: str, probs: torch.Tensor, *, dim: int = -1,
                           given_dtype: torch.dtype | None = None) -> None:
    """``probs`` must lie in [0, 1] and sum to 1 along ``dim`` (within a dtype tolerance).

    ``given_dtype`` is the dtype the user passed (before any upcast); it sets the tolerance.
    Nothing is copied: callers clamp to exactly [0, 1] slice by slice.
    """
    tol = probability_tolerance(given_dtype or probs.dtype)
    lo, hi = float(probs.min()), float(probs.max())
    if lo < -tol or hi > 1.0 + tol:
        raise DropkitValueError(
            expected(name, "probabilities in [0, 1] (pass from_logits=True for logits)",
                     f"values in [{lo:.4g}, {hi:.4g}]")
        )
    sums = probs.sum(dim=dim, dtype=torch.float64)
    worst = float((sums - 1.0).abs().max())
    if worst > tol:
        raise DropkitValueError(
            expected(name, f"probabilities summing to 1 over the class dimension "
                           f"(tolerance {tol:.1g}; pass from_logits=True for logits)",
                     f"sums off by up to {worst:.4g}")
        )


def check_probabilities(name: str, probs: torch.Tensor, *, dim: int = -1,
                        given_dtype: torch.dtype | None = None) -> torch.Tensor:
    """`check_probability_rows`, then ``probs`` clamped to exactly [0, 1] (a copy)."""
    check_probability_rows(name, probs, dim=dim, given_dtype=given_dtype)
    return probs.clamp(0.0, 1.0)


def class_samples(name: str, samples: object, from_logits: bool) -> torch.Tensor:
    """Validate ``(S, B, ..., C)`` samples (class dim last); return them as given."""
    if isinstance(samples, torch.Tensor) and samples.dim() < 3:
        raise DropkitValueError(expected(name, "a (S, B, ..., C) tensor (class dim last)",
                                         _describe(samples)))
    samples = check_samples(name, samples)
    if samples.shape[-1] == 0:
        raise DropkitValueError(expected(name, "a (S, B, ..., C) tensor with C >= 1 classes",
                                         _describe(samples)))
    if samples.numel() == 0:
        raise DropkitValueError(expected(name, "a non-empty (S, B, ..., C) tensor",
                                         _describe(samples)))
    if not from_logits:
        check_probability_rows(name, samples, dim=-1)
    return samples  # not upcast here: each slice is converted to float64 where it is used


def regression_means(name: str, means: object) -> torch.Tensor:
    """Sampled means ``(S, B, ...)``: finite, floating, non-empty."""
    means = check_samples(name, means, min_ndim=2)
    if means.numel() == 0:
        raise DropkitValueError(expected(name, "a non-empty (S, B, ...) tensor",
                                         _describe(means)))
    return working_dtype(means)


def finite_float(name: str, x: object) -> torch.Tensor:
    """A floating tensor with no NaN or infinity."""
    x = check_tensor(name, x)
    if not x.is_floating_point():
        raise DropkitTypeError(expected(name, "a floating-point tensor", _describe(x)))
    if not bool(torch.isfinite(x).all()):
        n_nan, n_inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
        raise DropkitValueError(
            expected(name, "finite values", f"{n_nan} NaN and {n_inf} infinite entries")
        )
    return x


def same_shape(name: str, x: torch.Tensor, shape: torch.Size, like: str) -> torch.Tensor:
    if tuple(x.shape) != tuple(shape):
        raise DropkitValueError(
            expected(name, f"a tensor of shape {tuple(shape)} (matching `{like}`)", _describe(x))
        )
    return x


def check_tau(tau: object) -> float:
    if isinstance(tau, bool) or not isinstance(tau, (int, float)):
        raise DropkitTypeError(expected("tau", "a positive float (model precision)", repr(tau)))
    tau = float(tau)
    if not (math.isfinite(tau) and tau > 0.0):
        raise DropkitValueError(expected("tau", "a positive finite float (model precision)", tau))
    return tau


def one_noise_model(tau: object, log_var: object, *, required: bool) -> None:
    """At most one of ``tau`` and ``log_var`` (exactly one if ``required``)."""
    if log_var is not None and tau is not None:
        raise DropkitValueError(
            expected("tau", "None when `log_var` is given (pass exactly one of `tau`, `log_var`)",
                     repr(tau))
        )
    if required and log_var is None and tau is None:
        raise DropkitValueError(
            expected("tau", "a positive float when `log_var` is None (pass exactly one of "
                            "`tau`, `log_var`)", "None for both")
        )


def check_mask(mask: object) -> torch.Tensor:
    """An attention mask ``(B, T, ...)`` of 0/1 (bool, integer or float), returned as bool.

    Every sequence must have at least one real (1) position: the mean over no tokens is not
    a number.
    """
    mask = check_tensor("mask", mask)
    if mask.dim() < 1 or mask.numel() == 0:
        raise DropkitValueError(expected("mask", "a non-empty (B, T) tensor of 0/1",
                                         _describe(mask)))
    if mask.dtype != torch.bool:
        if mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
            raise DropkitValueError(expected("mask", "0/1 values (bool or integer)",
                                             f"values {torch.unique(mask)[:5].tolist()}"))
        mask = mask == 1
    empty = ~mask.reshape(mask.shape[0], -1).any(dim=1)
    if bool(empty.any()):
        rows = torch.nonzero(empty).flatten()[:5].tolist()
        raise DropkitValueError(expected("mask", "at least one real (1) position per sequence",
                                         f"all-padding rows {rows}"))
    return mask
