"""The uncached strategies: S passes of the whole model (loop), or the batch repeated
(stacked); `cached_graph` and `cached_hooks` are the two ways of the cached strategy."""

from __future__ import annotations

import torch
from torch import nn

from dropkit.mc.inputs import ModelInputs
from dropkit.mc.outputs import Output, Selector, check_output_finite, select_samples


def join(parts: list[Output], dim: int = 0) -> Output:
    """Concatenate outputs along ``dim``, tuple-aware."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], tuple):
        return tuple(torch.cat([p[i] for p in parts], dim)
                     for i in range(len(parts[0])))
    return torch.cat(parts, dim)  # type: ignore[arg-type]


def run_pass(model: nn.Module, x: ModelInputs, copies: int, output: Selector) -> Output:
    """One forward over ``x`` (``copies * B`` rows, sample-major) -> ``(copies, B, ...)``."""
    out = select_samples(x.call(model), output, copies, x.b // copies)
    check_output_finite(out)
    return out


def loop_samples(model: nn.Module, x: ModelInputs, samples: int, *, max_batch: int | None,
                 output: Selector) -> Output:
    """S separate passes over the batch (each split into chunks of at most ``max_batch`` rows)."""
    step = x.b if max_batch is None else max_batch
    passes = [join([run_pass(model, x.rows(i, i + step), 1, output)
                    for i in range(0, x.b, step)], dim=1) for _ in range(samples)]
    return join(passes)  # (S, B, ...)


def repeat_rows(x: ModelInputs, start: int, stop: int) -> ModelInputs:
    """Rows ``start:stop`` of the batch repeated sample-major (row ``s * B + b``)."""
    rows = torch.arange(start, stop, device=x.device) % x.b
    return x.map(lambda t: t.index_select(0, rows), b=stop - start)


def stacked_samples(model: nn.Module, x: ModelInputs, samples: int, *, max_batch: int | None,
                    output: Selector) -> Output:
    """The batch repeated S times and run as few passes of at most ``max_batch`` rows.

    Rows are cut every ``max_batch`` rows of the repeated batch, across sample boundaries; a
    callable selector (which must see whole samples) gets passes of whole samples instead. On a
    GPU an out-of-memory error halves the pass and retries.
    """
    b, total = x.b, samples * x.b
    whole = callable(output) and not isinstance(output, (int, str))
    step = total if max_batch is None else max_batch
    if whole:
        step = max(b, step - step % b)
    start, parts = 0, []
    while start < total:
        stop = min(start + step, total)
        try:
            raw = repeat_rows(x, start, stop).call(model)
        except torch.OutOfMemoryError:
            if step <= (b if whole else 1) or x.device.type != "cuda":
                raise
            torch.cuda.empty_cache()
            step = max(b if whole else 1, step // 2)
            continue
        if whole:
            part = select_samples(raw, output, (stop - start) // b, b)
        else:
            one = select_samples(raw, output, 1, stop - start)
            part = tuple(t[0] for t in one) if isinstance(one, tuple) else one[0]
        check_output_finite(part)
        parts.append(part)
        start = stop
    if whole:
        return join(parts)
    flat = join(parts)  # (S*B, ...)
    return select_samples(flat, None, samples, b)  # (S*B, ...) -> (S, B, ...)
