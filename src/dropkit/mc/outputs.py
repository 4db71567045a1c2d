"""Pick the tensor(s) to sample from whatever a model returns, sample by sample."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.utils._pytree import tree_map

from dropkit.errors import DropkitError, DropkitTypeError, DropkitValueError, expected

Output = torch.Tensor | tuple[torch.Tensor, ...]
Selector = None | int | str | Callable[[Any], Any]


def check_selector(output: object) -> Selector:
    """``output`` is None, an int, a str or a callable (checked before any work)."""
    if output is None or callable(output) or isinstance(output, str) or (
            isinstance(output, int) and not isinstance(output, bool)):
        return output
    raise DropkitTypeError(expected("output", "None, an int, a str or a callable",
                                    f"{output!r} ({type(output).__name__})"))


def select_output(out: Any, output: Selector) -> Output:
    """Reduce a model's return value to a tensor or a tuple of tensors.

    ``output`` is None (a tensor as is; ``.logits`` of a transformers ``ModelOutput`` or any
    object or mapping that has one; a tuple or list of tensors as a tuple), an int (index into a
    tuple/list), a str (mapping key or attribute), or a callable applied to the raw output.
    """
    output = check_selector(output)
    if callable(output) and not isinstance(output, (int, str)):
        try:
            out = output(out)
        except DropkitError:
            raise
        except Exception as err:
            first = (str(err).splitlines() or [""])[0]
            raise DropkitValueError(expected(
                "output", "a callable that accepts the model's output",
                f"one that raised {type(err).__name__}: {first}")) from err
    elif isinstance(output, int):
        if not isinstance(out, (tuple, list)):
            raise DropkitTypeError(expected("output", "None for a model that returns "
                                            f"{type(out).__name__}", output))
        if not -len(out) <= output < len(out):
            raise DropkitValueError(expected("output", f"an index into the model's {len(out)} "
                                             "outputs", output))
        out = out[output]
    elif isinstance(output, str):
        found = out.get(output) if isinstance(out, Mapping) else getattr(out, output, None)
        if found is None:
            keys = list(out.keys()) if isinstance(out, Mapping) else [
                k for k in vars(out) if not k.startswith("_")] if hasattr(out, "__dict__") else []
            raise DropkitValueError(expected(
                "output", "a key or attribute of the model's output" + (
                    f" (one of {', '.join(map(repr, keys))})" if keys else ""), repr(output)))
        out = found
    if isinstance(out, torch.Tensor):
        return out
    logits = out.get("logits") if isinstance(out, Mapping) else getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):  # transformers' ModelOutput is a mapping
        return logits
    if isinstance(out, (tuple, list)) and out and all(isinstance(t, torch.Tensor) for t in out):
        return tuple(out)
    raise DropkitTypeError(expected(
        "output", "a selector for this model's output (an int for a tuple, a key for a dict, an "
        "attribute name, or a callable returning a tensor)", f"model output of type "
        f"{type(out).__name__}"))


def _split(out: Output, copies: int, b: int) -> Output:
    def one(t: torch.Tensor) -> torch.Tensor:
        if t.dim() == 0 or t.shape[0] != copies * b:
            raise DropkitValueError(expected(
                "output", f"outputs with one row per input (first dimension B={b} per pass)",
                f"a selected output of shape {tuple(t.shape[:1])} + ... for {copies} sample(s) "
                f"of {b} rows; a selector that reshapes rows (flattening tokens into the batch, "
                "say) must keep the batch first"))
        return t.reshape(copies, b, *t.shape[1:])  # (S*B, ...) -> (S, B, ...)
    return tuple(one(t) for t in out) if isinstance(out, tuple) else one(out)


def select_samples(raw: Any, output: Selector, copies: int, b: int) -> Output:
    """``(S, B, ...)`` samples from the raw output of one pass over ``copies * b`` rows.

    Built-in selectors pick first, then split rows into samples. A callable is applied to
    each sample's own rows (the raw output sliced sample by sample), so a selector may reshape
    its rows freely (flatten tokens into the batch, say) and still see one sample at a time.
    """
    if not callable(output) or isinstance(output, (int, str)) or copies == 1:
        out = select_output(raw, output)
        if copies == 1 and callable(output) and not isinstance(output, (int, str)):
            return tuple(t.unsqueeze(0) for t in out) if isinstance(out, tuple) \
                else out.unsqueeze(0)
        return _split(out, copies, b)
    out = select_output(raw, output)
    if all(t.dim() > 0 and t.shape[0] == copies * b
           for t in (out if isinstance(out, tuple) else (out,))):
        return _split(out, copies, b)  # the selector kept one row per input row

    def piece(s: int) -> Callable[[Any], Any]:
        def cut(t: Any) -> Any:
            if isinstance(t, torch.Tensor) and t.dim() > 0 and t.shape[0] == copies * b:
                return t.reshape(copies, b, *t.shape[1:])[s]
            return t
        return cut

    parts = [select_output(tree_map(piece(s), raw), output) for s in range(copies)]
    if isinstance(parts[0], tuple):
        return tuple(torch.stack([p[i] for p in parts]) for i in range(len(parts[0])))
    try:
        return torch.stack(parts)  # type: ignore[arg-type]
    except RuntimeError as err:
        raise DropkitValueError(expected("output", "a selector giving the same shape for every "
                                         "sample", str(err).splitlines()[0])) from err


def check_output_finite(out: Output) -> None:
    """Model outputs must be finite: a NaN is reported, never passed on."""
    for t in out if isinstance(out, tuple) else (out,):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise DropkitValueError(expected(
                "model", "a model whose outputs are finite",
                f"an output with {int(torch.isnan(t).sum())} NaN and "
                f"{int(torch.isinf(t).sum())} infinite entries"))
