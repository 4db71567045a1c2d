"""Pick the tensor(s) to sample from whatever a model returns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dropkit.errors import DropkitTypeError, DropkitValueError, expected

Output = torch.Tensor | tuple[torch.Tensor, ...]
Selector = None | int | str | Callable[[Any], Any]


def select_output(out: Any, output: Selector) -> Output:
    """Reduce a model's return value to a tensor or a tuple of tensors.

    ``output`` is None (a tensor as is, ``.logits`` of an object that has one, a tuple or list
    of tensors as a tuple), an int (index into a tuple/list), a str (dict key or attribute), or a
    callable applied to the raw output.
    """
    if callable(output) and not isinstance(output, (int, str)):
        out = output(out)
    elif isinstance(output, int) and not isinstance(output, bool):
        if not isinstance(out, (tuple, list)):
            raise DropkitTypeError(expected("output", "None for a model that returns "
                                            f"{type(out).__name__}", output))
        out = out[output]
    elif isinstance(output, str):
        out = out[output] if isinstance(out, dict) else getattr(out, output, None)
        if out is None:
            raise DropkitValueError(expected("output", "a key or attribute of the model's output",
                                             repr(output)))
    elif output is not None:
        raise DropkitTypeError(expected("output", "None, an int, a str or a callable",
                                        type(output).__name__))
    if isinstance(out, torch.Tensor):
        return out
    if not isinstance(out, (tuple, list, dict)) and isinstance(getattr(out, "logits", None),
                                                               torch.Tensor):
        return out.logits
    if isinstance(out, (tuple, list)) and out and all(isinstance(t, torch.Tensor) for t in out):
        return tuple(out)
    raise DropkitTypeError(expected(
        "output", "a selector for this model's output (an int for a tuple, a key for a dict, an "
        "attribute name, or a callable returning a tensor)", f"model output of type "
        f"{type(out).__name__}"))


def check_output_finite(out: Output) -> None:
    """Model outputs must be finite: a NaN is reported, never passed on."""
    for t in out if isinstance(out, tuple) else (out,):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise DropkitValueError(expected(
                "model", "a model whose outputs are finite",
                f"an output with {int(torch.isnan(t).sum())} NaN and "
                f"{int(torch.isinf(t).sum())} infinite entries"))
