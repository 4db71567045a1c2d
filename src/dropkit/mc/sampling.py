"""Draw S Monte Carlo dropout samples per input: ``(S, B, ...)``, samples first."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from dropkit._validate import (
    check_choice,
    check_finite,
    check_nonempty_batch,
    check_positive_int,
    check_tensor,
)
from dropkit.errors import DropkitTypeError, expected
from dropkit.mc.outputs import Output, Selector, check_output_finite, select_output

STRATEGIES = ("auto", "loop", "stacked", "cached")
Inputs = torch.Tensor | tuple[torch.Tensor, ...]


def check_inputs(x: Any) -> Inputs:
    """``x`` is a tensor, or a tuple of tensors sharing the batch dimension (positional args)."""
    parts = x if isinstance(x, (tuple, list)) else (x,)
    if not parts:
        raise DropkitTypeError(expected("x", "a tensor or a tuple of tensors", "an empty tuple"))
    for t in parts:
        check_nonempty_batch("x", check_finite("x", check_tensor("x", t)))
    if isinstance(x, (tuple, list)):
        if len({t.shape[0] for t in parts}) != 1:
            raise DropkitTypeError(expected("x", "tensors with one batch size",
                                            [tuple(t.shape) for t in parts]))
        return tuple(parts)
    return x


def batch_size(x: Inputs) -> int:
    return (x[0] if isinstance(x, tuple) else x).shape[0]


def device_of(x: Inputs) -> torch.device:
    return (x[0] if isinstance(x, tuple) else x).device


def map_inputs(x: Inputs, fn: Callable[[torch.Tensor], torch.Tensor]) -> Inputs:
    return tuple(fn(t) for t in x) if isinstance(x, tuple) else fn(x)


def call(model: nn.Module, x: Inputs, output: Selector) -> Output:
    out = select_output(model(*x) if isinstance(x, tuple) else model(x), output)
    check_output_finite(out)
    return out


def stack_outputs(parts: list[Output], dim: int = 0, *, stack: bool = True) -> Output:
    """Stack (or concatenate) a list of outputs, tuple-aware."""
    join = torch.stack if stack else torch.cat
    if isinstance(parts[0], tuple):
        return tuple(join([p[i] for p in parts], dim) for i in range(len(parts[0])))
    return join(parts, dim)


@contextlib.contextmanager
def seeded(generator: torch.Generator | None, device: torch.device) -> Iterator[None]:
    """Run torch's global RNG (which torch.nn.Dropout uses) from a seed drawn from ``generator``.

    The caller's global RNG state is restored afterwards, so sampling is reproducible under a
    given generator and never disturbs the user's random stream. Without a generator the
    global RNG is used as is.
    """
    if generator is None:
        yield
        return
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        torch.manual_seed(seed)
        yield


def rows_per_pass(b: int, max_batch: int | None) -> int:
    """How many rows one pass may take."""
    return b if max_batch is None else max_batch


def loop_samples(model: nn.Module, x: Inputs, samples: int, *, max_batch: int | None,
                 output: Selector) -> Output:
    """S separate passes over the batch (each split into chunks of at most ``max_batch`` rows)."""
    b = batch_size(x)
    step = rows_per_pass(b, max_batch)
    passes = []
    for _ in range(samples):
        chunks = [call(model, map_inputs(x, lambda t, i=i: t[i:i + step]), output)
                  for i in range(0, b, step)]
        passes.append(chunks[0] if len(chunks) == 1 else stack_outputs(chunks, stack=False))
    return stack_outputs(passes)  # (S, B, ...)


def stacked_samples(model: nn.Module, x: Inputs, samples: int, *, max_batch: int | None,
                    output: Selector) -> Output:
    """The batch repeated S times and run as few passes of at most ``max_batch`` rows.

    On a GPU an out-of-memory error halves the rows per pass and retries.
    """
    b = batch_size(x)
    total = samples * b
    step = total if max_batch is None else max_batch
    start, parts = 0, []
    while start < total:
        rows = torch.arange(start, min(start + step, total), device=device_of(x)) % b
        try:
            parts.append(call(model, map_inputs(x, lambda t, r=rows: t.index_select(0, r)), output))
        except torch.OutOfMemoryError:
            if step == 1 or device_of(x).type != "cuda":
                raise
            torch.cuda.empty_cache()
            step = max(1, step // 2)
            continue
        start += len(rows)
    flat = parts[0] if len(parts) == 1 else stack_outputs(parts, stack=False)  # (S*B, ...)
    if isinstance(flat, tuple):
        return tuple(t.reshape(samples, b, *t.shape[1:]) for t in flat)
    return flat.reshape(samples, b, *flat.shape[1:])  # (S*B, ...) -> (S, B, ...)


def sample(
    model: nn.Module,
    x: Inputs,
    samples: int = 30,
    *,
    strategy: str = "auto",
    max_batch: int | None = None,
    output: Selector = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    split_at: str | None = None,
) -> Output:
    """Monte Carlo dropout samples of ``model(x)``, shaped ``(S, B, ...)``.

    Runs under `mc_mode` (only dropout stochastic, everything else in eval) and
    ``torch.inference_mode``; the model's flags are restored afterwards.

    Args:
        model: any ``nn.Module`` with controllable dropout.
        x: the batch, ``(B, ...)``, or a tuple of tensors passed as positional arguments.
        samples: S >= 1.
        strategy: ``"loop"`` (S passes), ``"stacked"`` (the batch repeated S times, run in
            passes of at most ``max_batch`` rows), ``"cached"`` (everything before the first
            stochastic op runs once on the B rows, the rest on the repeated rows; see
            `dropkit.mc.cached_graph` and `dropkit.mc.cached_hooks`) or ``"auto"`` (cached when
            it applies and reproduces the stacked samples, with the samples per pass measured
            fastest; otherwise the measured faster of loop and stacked).
        max_batch: the most rows any single forward pass may take, in every strategy (None: no
            bound).
        output: how to pick the tensor(s) from the model's return value (see `select_output`).
        generator, seed: the source of the dropout masks; the same generator state (or seed) and
            strategy give identical samples. Without either, torch's global RNG is used.
            Seeded ``"auto"`` picks its samples-per-pass by a fixed rule rather than by timing,
            so its samples are identical across runs and machines too.
        split_at: cache up to this module (``"path.to.module"``) with hooks instead of tracing
            (for models torch.fx cannot trace); used by ``"cached"`` and ``"auto"``.

    Returns:
        A tensor ``(S, B, ...)``, or a tuple of such tensors when the model returns several.

    Note:
        The cached strategy draws plain ``nn.Dropout``/``F.dropout`` masks as ``U < 1 - p``
        (same law, cheaper on CPU than ``bernoulli_``), so its samples differ from the stacked
        ones under one seed; with these masks turned off they agree to float tolerance (tested).
    """
    from dropkit.mc.engine import session

    check_positive_int("samples", samples)
    check_choice("strategy", strategy, STRATEGIES)
    if max_batch is not None:
        check_positive_int("max_batch", max_batch)
    if split_at is not None and not isinstance(split_at, str):
        raise DropkitTypeError(expected("split_at", "None or a module path (str)",
                                        type(split_at).__name__))
    x = check_inputs(x)
    if seed is not None:
        generator = torch.Generator().manual_seed(check_positive_int("seed", seed, minimum=0))
    with session(model, x, samples, strategy=strategy, max_batch=max_batch, output=output,
                 generator=generator, split_at=split_at) as sampler:
        return sampler.draw(samples)
