"""The one ``torch.fx`` tracer: which modules stay whole is the caller's choice.

`dropkit.mc.cached_graph` keeps dropout-like modules whole (so they can be run per sample);
`dropkit.diagnose` keeps every layer it has a category for whole. Everything else is traced
through, user modules and torch containers alike.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import fx, nn


class _Tracer(fx.Tracer):
    def __init__(self, leaf: Callable[[nn.Module], bool | None]) -> None:
        super().__init__()
        self._leaf = leaf

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        decided = self._leaf(m)
        return super().is_leaf_module(m, module_qualified_name) if decided is None else decided


def trace(model: nn.Module, leaf: Callable[[nn.Module], bool | None]) -> fx.GraphModule:
    """Trace ``model`` symbolically; ``leaf(m)`` says whether a module stays one node (None:
    torch.fx's default, which keeps ``torch.nn`` layers whole).

    Raises whatever tracing raises (the callers turn it into their own fallback).
    """
    graph = _Tracer(leaf).trace(model)
    return fx.GraphModule(model, graph)
