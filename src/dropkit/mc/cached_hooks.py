"""Hook-based cached-prefix sampling, for models that torch.fx cannot trace.

The model is split at a module (``split_at="path.to.module"``, or the first stochastic module
to run). A first pass on the B input rows records the input of that module and the outputs of
the modules that finished before it; later passes replay those outputs (their ``forward`` is
patched for the duration of the pass, then restored) and a forward pre-hook expands the split
module's input to ``c * B`` rows, row ``s * B + b`` as in the stacked strategy.

This is only correct when nothing computed before the split is read after it. A check pass
(run once per input shape) tracks every tensor made before the split with a
``TorchFunctionMode`` and raises `SkipAcrossSplit` when one with B rows is read after it (a
residual skip across the split, say); it then compares the cached samples with the stacked ones
under one seed. Either failure makes the caller fall back; a wrong result is never returned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from dropkit.errors import DropkitValueError, expected


class SkipAcrossSplit(Exception):
    """A tensor computed before the split point was used after it."""


class _Captured(Exception):
    pass


class _Track(TorchFunctionMode):
    """Remembers tensors made before the split; raises when one with B rows is read after."""

    def __init__(self, seeds: list[torch.Tensor], b: int, split: str) -> None:
        super().__init__()
        self.keep = list(seeds)  # hold references so ids are not reused
        self.ids = {id(t) for t in seeds}
        self.b, self.split, self.after = b, split, False

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if self.after:
            for t in tree_flatten((args, kwargs))[0]:
                if (isinstance(t, torch.Tensor) and id(t) in self.ids and t.dim() > 0
                        and t.shape[0] == self.b):
                    raise SkipAcrossSplit(
                        f"a tensor computed before the split at {self.split!r} is used after it "
                        f"(in {getattr(func, '__name__', func)}), e.g. a skip connection across "
                        "the split")
        out = func(*args, **kwargs)
        if not self.after:
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    self.keep.append(t)
                    self.ids.add(id(t))
        return out


def _expand(value: Any, copies: int, b: int) -> Any:
    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == b:
        return value.unsqueeze(0).expand(copies, *value.shape).reshape(copies * b,
                                                                       *value.shape[1:])
    if isinstance(value, (tuple, list)):
        return type(value)(_expand(v, copies, b) for v in value)
    if isinstance(value, dict):
        return {k: _expand(v, copies, b) for k, v in value.items()}
    return value


class HookPlan:
    """Cached prefix of one batch for a model split at a module."""

    def __init__(self, model: nn.Module, split_at: str | None, candidates: list[str]) -> None:
        self.model = model
        modules = dict(model.named_modules())
        if split_at is not None and split_at not in modules:
            raise DropkitValueError(expected("split_at", "a module path of the model (as in "
                                             "model.named_modules())", repr(split_at)))
        self.split_at = split_at
        self.candidates = [split_at] if split_at is not None else candidates
        self.modules = modules
        self.replay: dict[nn.Module, list[Any]] = {}
        self.split_input: tuple[Any, dict[str, Any]] | None = None

    def capture(self, call: Callable[[], Any], b: int) -> str:
        """Run the prefix once on the B rows; returns the path split at."""
        stack: list[nn.Module] = []
        done: list[tuple[nn.Module, Any, list[nn.Module]]] = []
        state: dict[str, Any] = {}
        handles = []
        targets = {self.modules[p]: p for p in self.candidates}

        def pre(m: nn.Module, args: Any, kwargs: Any) -> None:
            if m in targets and "split" not in state:
                state["split"] = targets[m]
                state["stack"] = list(stack)
                state["input"] = (args, kwargs)
                raise _Captured
            stack.append(m)

        def post(m: nn.Module, args: Any, kwargs: Any, out: Any) -> None:
            stack.pop()
            done.append((m, out, list(stack)))

        for m in self.modules.values():
            handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
            handles.append(m.register_forward_hook(post, with_kwargs=True))
        try:
            call()
        except _Captured:
            pass
        finally:
            for h in handles:
                h.remove()
        if "split" not in state:
            raise SkipAcrossSplit("the split module never ran")
        ancestors = set(state["stack"])
        self.replay = {}
        for m, out, callers in done:  # maximal modules: called directly by the split's ancestors
            if all(c in ancestors for c in callers):
                self.replay.setdefault(m, []).append(out)
        self.split_input = state["input"]
        self.split_path = str(state["split"])
        if not self.replay:
            raise SkipAcrossSplit(f"no module runs before {self.split_path!r}: nothing to cache")
        return self.split_path

    def run(self, call: Callable[[], Any], copies: int, b: int, *, check: bool = False) -> Any:
        """One pass with ``copies`` samples per row, replaying the prefix."""
        assert self.split_input is not None
        split = self.modules[self.split_path]
        saved = {m: m.__dict__.get("forward") for m in self.replay}
        track = None
        if check:
            seeds = [t for outs in self.replay.values() for t in tree_flatten(outs)[0]
                     if isinstance(t, torch.Tensor)]
            track = _Track(seeds, b, self.split_path)
        fired = {"done": False}

        def pre(m: nn.Module, args: Any, kwargs: Any) -> tuple[Any, Any] | None:
            if fired["done"]:
                return None
            fired["done"] = True
            assert self.split_input is not None  # set by capture()
            cached_args, cached_kwargs = self.split_input  # the B rows the prefix gave once
            expanded = _expand(cached_args, copies, b), _expand(cached_kwargs, copies, b)
            if track is not None:  # from here on, reading a pre-split tensor is an error
                track.after = True
            return expanded

        def replayer(m: nn.Module, outs: list[Any]) -> Callable[..., Any]:
            queue = list(outs)
            original = type(m).forward.__get__(m)

            def forward(*args: Any, **kwargs: Any) -> Any:
                return queue.pop(0) if queue and not fired["done"] else original(*args, **kwargs)
            return forward

        handle = split.register_forward_pre_hook(pre, with_kwargs=True)
        try:
            for m, outs in self.replay.items():
                m.forward = replayer(m, outs)
            if track is not None:
                with track:
                    return call()
            return call()
        finally:
            handle.remove()
            for m, fwd in saved.items():
                if fwd is None:
                    del m.forward
                else:
                    m.forward = fwd
