"""Draw S Monte Carlo dropout samples per input: ``(S, B, ...)``, samples first."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from dropkit._validate import check_choice, check_positive_int
from dropkit.errors import DropkitTypeError, expected
from dropkit.inspection.borrow import check_model, draw_seed, forked_rng
from dropkit.mc.inputs import ModelInputs, check_inputs
from dropkit.mc.memory import check_kept_samples
from dropkit.mc.outputs import Output, Selector, check_selector
from dropkit.mc.plan import Plan, plan
from dropkit.mc.sampler import Sampler

STRATEGIES = ("auto", "loop", "stacked", "cached")
# torch's dropout draws from one process-wide generator: two threads drawing at once would take
# each other's numbers (a seeded call would then depend on the other thread). Drawing samples is
# therefore serialised in a process; planning is per model, and callers of the model itself
# (eval passes in other threads) are never blocked.
SAMPLING_LOCK = threading.RLock()
MAX_SEED = 2**63 - 1


def check_generator(generator: object, seed: object) -> torch.Generator | None:
    """One source of randomness: a ``torch.Generator``, or a seed in ``[0, 2**63)``."""
    if seed is not None:
        if generator is not None:
            raise DropkitTypeError(expected("seed", "None when `generator` is given",
                                            repr(seed)))
        s = check_positive_int("seed", seed, minimum=0)
        if s > MAX_SEED:
            from dropkit.errors import DropkitValueError
            raise DropkitValueError(expected("seed", f"an integer in [0, {MAX_SEED}]", s))
        return torch.Generator().manual_seed(s)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise DropkitTypeError(expected("generator", "None or a torch.Generator",
                                        type(generator).__name__))
    return generator


def check_flag(name: str, value: object) -> bool:
    """A bool option must be a bool: ``"no"`` would otherwise count as True."""
    if not isinstance(value, bool):
        raise DropkitTypeError(expected(name, "a bool (True or False)", repr(value)))
    return value


def check_options(*, strategy: object, max_batch: object, split_at: object,
                  output: object, stochastic_depth: object) -> None:
    check_choice("strategy", strategy, STRATEGIES)
    if max_batch is not None:
        check_positive_int("max_batch", max_batch)
    if split_at is not None and not isinstance(split_at, str):
        raise DropkitTypeError(expected("split_at", "None or a module path (str)",
                                        type(split_at).__name__))
    check_selector(output)
    check_flag("stochastic_depth", stochastic_depth)


@contextlib.contextmanager
def session(model: nn.Module, x: ModelInputs, samples: int, *, strategy: str,
            max_batch: int | None, output: Selector, generator: torch.Generator | None,
            split_at: str | None = None, stochastic_depth: bool = False
            ) -> Iterator[tuple[Plan, Sampler]]:
    """Plan + ``inference_mode`` + the seeded RNG around a `Sampler` for the batch ``x``.

    With a generator, one seed is drawn from it and torch's random state (and every
    module-owned generator) runs from that seed inside the block and is given back after, so
    sampling is reproducible and never disturbs the caller's random stream. The block holds
    `SAMPLING_LOCK` (see there).
    """
    with torch.inference_mode():
        p, sampler = plan(model, x, samples, strategy=strategy, max_batch=max_batch,
                          output=output, split_at=split_at, seeded=generator is not None,
                          stochastic_depth=stochastic_depth)
        with SAMPLING_LOCK:
            if generator is None:
                yield p, sampler
                return
            with forked_rng(sampler.model, draw_seed(generator), x.device):
                yield p, sampler


def sample(
    model: nn.Module,
    x: Any = None,
    samples: int = 30,
    *,
    strategy: str = "auto",
    max_batch: int | None = None,
    output: Selector = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    split_at: str | None = None,
    stochastic_depth: bool = False,
    inputs: Mapping[str, Any] | None = None,
    memory_limit: int | None = None,
) -> Output:
    """Monte Carlo dropout samples of ``model(x)``, shaped ``(S, B, ...)``.

    Only the model's dropout is stochastic (everything else in eval: BatchNorm uses its running
    statistics) and it runs under ``torch.inference_mode``. The user's model is never switched:
    sampling uses a private copy of its module tree that shares every parameter and buffer, so
    other threads may call the model meanwhile.

    Args:
        model: any ``nn.Module`` with dropout that fires when switched on.
        x: the batch: a tensor ``(B, ...)``, a tuple of tensors (positional arguments), or a
            mapping passed as keywords (a dict, transformers' ``BatchEncoding``).
        samples: S >= 1.
        strategy: ``"loop"`` (S passes), ``"stacked"`` (the batch repeated S times, run in
            passes of at most ``max_batch`` rows), ``"cached"`` (everything before the first
            stochastic op runs once on the B rows, the rest on the repeated rows) or ``"auto"``
            (cached when it applies and reproduces the stacked samples; samples per pass
            measured fastest, or by a fixed rule when seeded).
        max_batch: the most rows any single forward pass may take (None: no bound).
        output: how to pick the tensor(s) from the model's return value (see
            `dropkit.mc.outputs.select_output`; transformers outputs give ``.logits``).
        generator, seed: the source of the dropout masks; the same generator state (or seed),
            inputs and options give identical samples on any machine.
        split_at: cache up to this module (``"path.to.module"``) with hooks instead of tracing.
        stochastic_depth: also sample over stochastic depth (timm ``DropPath``, torchvision
            ``StochasticDepth``, transformers ``drop_path``). Off by default: it drops whole
            residual branches per sample, a different (much coarser) approximate posterior than
            the model's dropout, and models are usually calibrated with it off.
        inputs: extra keyword inputs (with ``x`` as the first positional argument or None).
        memory_limit: the most bytes the returned samples may take (None: half of the memory
            available); checked before sampling, from the output size of one row.

    Returns:
        A tensor ``(S, B, ...)``, or a tuple of such tensors when the model returns several.
    """
    model = check_model(model)
    check_positive_int("samples", samples)
    check_options(strategy=strategy, max_batch=max_batch, split_at=split_at, output=output,
                  stochastic_depth=stochastic_depth)
    generator = check_generator(generator, seed)
    batch = check_inputs(x, inputs)
    with session(model, batch, samples, strategy=strategy, max_batch=max_batch, output=output,
                 generator=generator, split_at=split_at,
                 stochastic_depth=stochastic_depth) as (p, sampler):
        check_kept_samples(samples, p.row_bytes, batch.b, batch.device, memory_limit)
        return sampler.draw(samples)
