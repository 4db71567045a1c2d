"""Borrowing a user's model: check it, run it, and leave every flag and random state as it was.

Everything dropkit does to a model (flags switched for Monte Carlo dropout, hooks, patched
forwards, probes) happens inside these context managers, which restore each module exactly, also
on error or interruption.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import torch
from torch import nn
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from dropkit.errors import DropkitTypeError, DropkitValueError, expected


def check_model(model: object) -> nn.Module:
    """``model`` must be an initialised ``nn.Module``.

    Lazy modules (``LazyLinear``...) are refused until they have run once: the first forward
    would turn them into ordinary modules, a change to the user's model.
    """
    if not isinstance(model, nn.Module):
        raise DropkitTypeError(expected("model", "a torch.nn.Module", type(model).__name__))
    lazy = [n for n, t in [*model.named_parameters(), *model.named_buffers()]
            if isinstance(t, (UninitializedParameter, UninitializedBuffer))]
    if lazy:
        raise DropkitValueError(expected(
            "model", "a model whose lazy modules are initialised (run one forward pass on a real "
            "batch first; dropkit never changes a model)", f"uninitialised {', '.join(lazy[:3])}"))
    return model


@contextmanager
def flags_restored(model: nn.Module) -> Iterator[None]:
    """Restore every module's ``training`` flag on exit, also on error."""
    saved = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for m, flag in saved:
            m.training = flag


def module_generators(model: nn.Module) -> list[torch.Generator]:
    """Generators owned by modules (``dropkit.nn.Dropout(generator=g)``), each once."""
    seen: dict[int, torch.Generator] = {}
    for m in model.modules():
        g = getattr(m, "generator", None)
        if isinstance(g, torch.Generator):
            seen.setdefault(id(g), g)
    return list(seen.values())


@contextmanager
def _generators_restored(gens: list[torch.Generator], seed: int | None) -> Iterator[None]:
    states = [g.get_state() for g in gens]
    try:
        if seed is not None:  # a seeded run draws module masks from the seed too
            for i, g in enumerate(gens):
                g.manual_seed((seed + 7919 * (i + 1)) % 2**63)
        yield
    finally:
        for g, s in zip(gens, states, strict=True):
            g.set_state(s)


def _devices(model: nn.Module, device: torch.device | None) -> list[int]:
    tensors = [*model.parameters(), *model.buffers()]
    cuda = {t.device.index or 0 for t in tensors if t.is_cuda}
    if device is not None and device.type == "cuda":
        cuda.add(device.index or 0)
    return sorted(cuda)


@contextmanager
def forked_rng(model: nn.Module, seed: int | None = 0,
               device: torch.device | None = None) -> Iterator[None]:
    """Run with torch's random state (CPU, the model's CUDA devices) and every module-owned
    generator forked, seeded with ``seed`` (None: continue from the current state), and give
    the caller's random state back afterwards."""
    cuda = _devices(model, device)
    with ExitStack() as stack:
        stack.enter_context(torch.random.fork_rng(devices=cuda))
        stack.enter_context(_generators_restored(module_generators(model), seed))
        if seed is not None:
            torch.default_generator.manual_seed(seed)  # not torch.manual_seed: every GPU
            for i in cuda:
                torch.cuda.default_generators[i].manual_seed(seed)
        yield


def draw_seed(generator: torch.Generator) -> int:
    """One 62-bit seed from the caller's generator (advances it by one draw)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator))
