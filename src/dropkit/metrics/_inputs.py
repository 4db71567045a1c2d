"""Validation and conversion of metric inputs at the public boundary (shared by all metrics)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dropkit._validate import _describe
from dropkit.errors import DropkitTypeError, DropkitValueError, expected
from dropkit.measures._checks import check_from_logits as _check_from_logits
from dropkit.measures._checks import check_probabilities as _check_probabilities

ArrayLike = Any  # torch.Tensor or numpy.ndarray


def as_tensor(name: str, x: object) -> torch.Tensor:
    """Accept a torch tensor or a numpy array (converted without copy where possible)."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    raise DropkitTypeError(expected(name, "a torch.Tensor or numpy.ndarray", type(x).__name__))


def _check_finite(name: str, x: torch.Tensor) -> None:
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        n_nan, n_inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
        raise DropkitValueError(
            expected(name, "finite values", f"{n_nan} NaN and {n_inf} infinite entries")
        )


def float_tensor(name: str, x: object, *, ndim: int | None = None,
                 shape: tuple[int, ...] | None = None, like: str = "") -> torch.Tensor:
    """A finite, non-empty floating tensor (half precision promoted to float32)."""
    x = as_tensor(name, x)
    if ndim is not None and x.dim() != ndim:
        letters = {1: "(B,)", 2: "(B, C)"}.get(ndim, f"{ndim}-D")
        raise DropkitValueError(expected(name, f"a {letters} tensor", _describe(x)))
    if shape is not None and tuple(x.shape) != tuple(shape):
        raise DropkitValueError(
            expected(name, f"a tensor of shape {tuple(shape)} (matching `{like}`)", _describe(x))
        )
    if x.numel() == 0:
        raise DropkitValueError(expected(name, "a non-empty tensor", _describe(x)))
    if not x.is_floating_point():
        raise DropkitTypeError(expected(name, "a floating-point tensor", _describe(x)))
    _check_finite(name, x)
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    return x


def binary_tensor(name: str, x: object, n: int, like: str) -> torch.Tensor:
    """A (n,) tensor of 0/1 (bool, integer or float) returned as bool."""
    x = as_tensor(name, x)
    if x.dim() != 1 or x.shape[0] != n:
        raise DropkitValueError(
            expected(name, f"a (B,) tensor with B = {n} (matching `{like}`)", _describe(x))
        )
    if x.dtype == torch.bool:
        return x
    if x.is_complex() or not bool(((x == 0) | (x == 1)).all()):
        raise DropkitValueError(expected(name, "binary values (0/1 or bool)",
                                         f"values {torch.unique(x)[:5].tolist()}"))
    return x == 1


def class_inputs(preds: object, target: object, from_logits: object
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate ``preds (B, C)`` and integer ``target (B,)`` in ``[0, C)``.

    Returns ``(probs, log_probs, target)``; ``log_probs`` is ``-inf`` where a given probability
    is exactly 0.
    """
    from_logits = _check_from_logits(from_logits)
    given_dtype = as_tensor("preds", preds).dtype
    preds = float_tensor("preds", preds, ndim=2)
    b, c = preds.shape
    target = as_tensor("target", target)
    if target.dim() != 1 or target.shape[0] != b:
        raise DropkitValueError(
            expected("target", f"a (B,) tensor of class indices with B = {b} (matching `preds`)",
                     _describe(target))
        )
    if target.dtype == torch.bool or target.is_floating_point() or target.is_complex():
        raise DropkitTypeError(
            expected("target", "an integer tensor of class indices", _describe(target))
        )
    lo, hi = int(target.min()), int(target.max())
    if lo < 0 or hi >= c:
        raise DropkitValueError(
            expected("target", f"class indices in [0, {c}) (C = {c} columns of `preds`)",
                     f"values in [{lo}, {hi}]")
        )
    target = target.long()
    if from_logits:
        log_probs = torch.log_softmax(preds, dim=-1)
        return log_probs.exp(), log_probs, target
    probs = _check_probabilities("preds", preds, dim=-1, given_dtype=given_dtype)
    return probs, probs.log(), target
