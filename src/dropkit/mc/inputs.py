"""What a model is called with: positional tensors and keyword inputs, sharing a batch dim.

`check_inputs` accepts a tensor, a tuple of tensors (positional arguments) or a mapping passed as
keywords (a dict, transformers' ``BatchEncoding``), plus extra keywords. Every tensor whose
first dimension is the batch size B is *batched*: split in row chunks, repeated for stacked
samples, expanded for cached ones. Other values (flags, a ``(1, T)`` position tensor, caches)
are passed as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dropkit._validate import _describe, check_finite
from dropkit.errors import DropkitTypeError, DropkitValueError, expected


@dataclass(frozen=True)
class ModelInputs:
    """``model(*args, **kwargs)`` for a batch of ``b`` rows."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    b: int

    def tensors(self) -> list[torch.Tensor]:
        return [v for v in (*self.args, *self.kwargs.values()) if isinstance(v, torch.Tensor)]

    @property
    def device(self) -> torch.device:
        return self.tensors()[0].device

    def batched(self, v: Any) -> bool:
        return isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == self.b

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor], b: int | None = None
            ) -> ModelInputs:
        """Apply ``fn`` to every batched tensor; ``b`` is the new batch size (default: read)."""
        args = tuple(fn(v) if self.batched(v) else v for v in self.args)
        kwargs = {k: fn(v) if self.batched(v) else v for k, v in self.kwargs.items()}
        first = next((v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)
                      and v.dim() > 0), None)
        return ModelInputs(args, kwargs, b if b is not None else (
            first.shape[0] if first is not None else self.b))

    def rows(self, start: int, stop: int) -> ModelInputs:
        return self.map(lambda t: t[start:stop], b=min(stop, self.b) - start)

    def call(self, model: nn.Module) -> Any:
        return model(*self.args, **self.kwargs)

    def signature(self) -> tuple[Any, ...]:
        """Everything about the inputs that can change a plan: structure, shapes, dtypes."""
        def sig(v: Any) -> Any:
            if isinstance(v, torch.Tensor):
                return ("tensor", tuple(v.shape), v.dtype, str(v.device))
            if isinstance(v, (bool, int, float, str, type(None))):
                return v
            return type(v).__name__
        return (tuple(sig(v) for v in self.args),
                tuple((k, sig(v)) for k, v in sorted(self.kwargs.items())))

    def mask(self) -> torch.Tensor | None:
        """The attention mask ``(B, T)`` when the inputs carry one (padding = 0)."""
        m = self.kwargs.get("attention_mask")
        if isinstance(m, torch.Tensor) and m.dim() == 2 and m.shape[0] == self.b:
            return m
        return None

    def describe(self) -> str:
        parts = [_describe(v) for v in self.args]
        parts += [f"{k}={_describe(v)}" for k, v in self.kwargs.items()]
        return ", ".join(parts)


def check_inputs(x: Any, kwargs: Mapping[str, Any] | None = None, *,
                 name: str = "x") -> ModelInputs:
    """Validate a batch: a tensor, a tuple of tensors, or a mapping of keyword inputs.

    Every floating tensor must be finite; the batch (first) dimension must be non-empty and
    shared by the tensors (a tensor with first dimension 1, such as ``position_ids``, is
    passed as is).
    """
    kw: dict[str, Any] = dict(kwargs or {})
    if isinstance(x, Mapping):
        overlap = set(x) & set(kw)
        if overlap:
            raise DropkitValueError(expected(name, "inputs given once (in the mapping or as "
                                             "keywords)", f"{sorted(overlap)} in both"))
        kw = {**{str(k): v for k, v in x.items()}, **kw}
        args: tuple[Any, ...] = ()
    elif isinstance(x, (tuple, list)):
        if not x and not kw:
            raise DropkitTypeError(expected(name, "a tensor, a tuple of tensors or a mapping of "
                                            "keyword inputs", "an empty tuple"))
        args = tuple(x)
    elif x is None:
        args = ()
    else:
        args = (x,)
    # positional arguments are tensors; keyword inputs may also be flags (return_dict=False)
    for i, v in enumerate(args):
        if not isinstance(v, torch.Tensor):
            label = f"{name}[{i}]" if len(args) > 1 else name
            raise DropkitTypeError(expected(label, "a torch.Tensor", type(v).__name__))
    tensors = [(f"{name}[{i}]" if len(args) > 1 else name, v) for i, v in enumerate(args)]
    tensors += [(f"{name}[{k!r}]", v) for k, v in kw.items()]
    real = [(label, v) for label, v in tensors if isinstance(v, torch.Tensor)]
    if not real:
        raise DropkitTypeError(expected(name, "a tensor, a tuple of tensors or a mapping of "
                                        "keyword inputs with at least one tensor",
                                        type(x).__name__))
    for label, v in real:
        check_finite(label, v)
    first_label, first = real[0]
    if first.dim() == 0 or first.shape[0] == 0:
        raise DropkitValueError(expected(first_label, "a non-empty batch (B >= 1 rows)",
                                         _describe(first)))
    b = first.shape[0]
    odd = [(label, tuple(v.shape)) for label, v in real
           if v.dim() == 0 or v.shape[0] not in (b, 1)]
    if odd:
        raise DropkitValueError(expected(name, f"tensors sharing the batch size B={b} of "
                                         f"{first_label} (or a first dimension of 1)",
                                         ", ".join(f"{lab} of shape {s}" for lab, s in odd)))
    return ModelInputs(args, kw, b)
