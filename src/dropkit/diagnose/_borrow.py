"""Inputs of the diagnostics: example inputs and batches of data, with clear errors.

Borrowing the model itself (type check, flags, random state) lives in
`dropkit.inspection.borrow`, shared with `dropkit.mc`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import nn

from dropkit._validate import check_positive_int
from dropkit.errors import DropkitTypeError, DropkitValueError, expected
from dropkit.inspection.borrow import check_model, flags_restored, forked_rng

__all__ = ["as_args", "check_model", "flags_restored", "forked_rng", "forward_batches",
           "forward_error", "iter_batches"]


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return type(x).__name__


def as_args(example_input: object) -> tuple[object, ...]:
    """A tensor is one positional argument; a tuple or list is the positional arguments."""
    if isinstance(example_input, torch.Tensor):
        return (example_input,)
    if isinstance(example_input, tuple | list) and example_input and any(
            isinstance(a, torch.Tensor) for a in example_input):
        return tuple(example_input)
    raise DropkitTypeError(expected(
        "example_input", "a torch.Tensor or a tuple of the forward's positional arguments",
        _describe(example_input)))


def iter_batches(data: object, batch_size: int = 256) -> Iterator[torch.Tensor]:
    """Batches of model inputs from a tensor (split in rows) or an iterable of batches.

    An iterable may yield tensors or ``(x, y, ...)`` tuples/lists, of which ``x`` is used
    (a DataLoader over a TensorDataset works as is).
    """
    batch_size = check_positive_int("batch_size", batch_size)
    if isinstance(data, torch.Tensor):
        if data.dim() == 0 or data.shape[0] == 0:
            raise DropkitValueError(expected("data", "a non-empty batch (B >= 1 rows)",
                                             _describe(data)))
        yield from torch.split(data, batch_size)
        return
    if not isinstance(data, Iterable):
        raise DropkitTypeError(expected("data", "a tensor or an iterable of batches",
                                        type(data).__name__))
    n = 0
    for batch in data:
        x = batch[0] if isinstance(batch, tuple | list) and batch else batch
        if not isinstance(x, torch.Tensor):
            raise DropkitTypeError(expected("data", "batches of tensors or (x, y) pairs",
                                            f"a batch of {type(x).__name__}"))
        n += 1
        yield x
    if n == 0:
        raise DropkitValueError(expected("data", "at least one batch", "an empty iterable"))


def forward_error(exc: BaseException, example: object) -> DropkitValueError:
    """The message for a forward pass that failed on the user's input."""
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return DropkitValueError(expected(
        "example_input", "an input the model's forward accepts",
        f"{_describe(example)}, on which the forward raised {type(exc).__name__}: {first}"))


def forward_batches(model: nn.Module, data: object, batch_size: int) -> None:
    """Run ``model`` on every batch of ``data``; a failing forward becomes a clear error."""
    for x in iter_batches(data, batch_size):
        try:
            model(x)
        except Exception as exc:  # report the user's forward failure
            raise forward_error(exc, x) from exc
