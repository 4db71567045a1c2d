"""Checks at the public boundary; each raises a DropkitError subclass with a named argument."""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral, Real

import torch

from dropkit.errors import DropkitTypeError, DropkitValueError, expected


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return repr(x)


def check_probability(name: str, p: object, *, allow_one: bool = False) -> float:
    """`p` must be a real number in [0, 1) (or [0, 1] with `allow_one`)."""
    if isinstance(p, bool) or not isinstance(p, Real):
        raise DropkitTypeError(expected(name, "a float in [0, 1)", _describe(p)))
    p = float(p)
    hi_ok = p <= 1.0 if allow_one else p < 1.0
    if not (p >= 0.0 and hi_ok):
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise DropkitValueError(expected(name, f"a float in {interval}", p))
    return p


def check_positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    """`value` must be an integer >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise DropkitTypeError(expected(name, f"an integer >= {minimum}", _describe(value)))
    if value < minimum:
        raise DropkitValueError(expected(name, f"an integer >= {minimum}", value))
    return int(value)


def check_choice(name: str, value: object, options: Iterable[str]) -> str:
    """`value` must be one of a closed set of strings."""
    options = tuple(options)
    if value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise DropkitValueError(expected(name, f"one of {listed}", repr(value)))
    return value


def check_tensor(name: str, x: object) -> torch.Tensor:
    """`x` must be a torch.Tensor."""
    if not isinstance(x, torch.Tensor):
        raise DropkitTypeError(expected(name, "a torch.Tensor", type(x).__name__))
    return x


def check_finite(name: str, x: torch.Tensor) -> torch.Tensor:
    """`x` must contain no NaN or infinity (floating tensors only are checked)."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise DropkitValueError(
            expected(name, "finite values", f"{n_nan} NaN and {n_inf} infinite entries")
        )
    return x


def check_nonempty_batch(name: str, x: torch.Tensor) -> torch.Tensor:
    """`x` must have at least one dimension and a non-empty batch (first) dimension."""
    if x.dim() == 0 or x.shape[0] == 0:
        raise DropkitValueError(expected(name, "a non-empty batch (B >= 1 rows)", _describe(x)))
    return x


def check_samples(name: str, samples: object, *, ndim: int | None = None,
                  min_ndim: int | None = None) -> torch.Tensor:
    """`samples` must be a finite floating tensor shaped `(S, B, ...)` with S, B >= 1."""
    samples = check_tensor(name, samples)
    if ndim is not None and samples.dim() != ndim:
        letters = {2: "(S, B)", 3: "(S, B, C)"}.get(ndim, f"{ndim}-D")
        raise DropkitValueError(expected(name, f"a {letters} tensor", _describe(samples)))
    if min_ndim is not None and samples.dim() < min_ndim:
        raise DropkitValueError(
            expected(name, f"a tensor with at least {min_ndim} dims (S, B, ...)",
                     _describe(samples))
        )
    if samples.shape[0] == 0 or (samples.dim() > 1 and samples.shape[1] == 0):
        raise DropkitValueError(expected(name, "S >= 1 samples of B >= 1 rows",
                                         _describe(samples)))
    if not samples.is_floating_point():
        raise DropkitTypeError(expected(name, "a floating-point tensor", _describe(samples)))
    return check_finite(name, samples)
