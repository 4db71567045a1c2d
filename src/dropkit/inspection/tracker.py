"""The one call tracker: every torch function a forward pass calls, with the module calling it.

`CallTracker` is a ``TorchFunctionMode`` plus forward pre/post hooks on every module of a model,
so each torch call is seen with the path of the innermost module running it. Torch function
modes are thread-local and the hooks live only inside the ``with`` block. Subclasses override
`on_call`, `on_enter` and `on_exit`.

`trace_firing` is the runtime check of discovery: it records which dropout actually dropped
something in one pass (a dropout function called active with ``p > 0``, attention with
``dropout_p > 0``, a stochastic-depth module running in training mode with a rate > 0) and which
random ops ran in code dropkit does not know as dropout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import nn
from torch.overrides import TorchFunctionMode

from dropkit.inspection.registry import (
    DROPOUT_MODULES,
    dropout_call,
    module_family,
    module_rate,
    owner_rate,
)

# torch functions and tensor methods that draw random numbers (seen under the function mode)
RANDOM_OPS = frozenset({
    "bernoulli", "bernoulli_", "rand", "rand_like", "randn", "randn_like", "randint",
    "randint_like", "randperm", "normal", "normal_", "uniform_", "random_", "exponential_",
    "geometric_", "cauchy_", "log_normal_", "multinomial", "poisson",
})


def func_name(func: Any) -> str:
    """A torch function's or tensor method's name (``x.T`` is named by its property)."""
    name = getattr(func, "__name__", "")
    if name == "__get__":
        name = getattr(getattr(func, "__self__", None), "__name__", name)
    return str(name)


_T = TypeVar("_T", bound="CallTracker")


class CallTracker(TorchFunctionMode):
    """Sees every torch call of a forward pass with the calling module's path."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.paths = {m: p for p, m in model.named_modules()}
        self.stack: list[str] = [""]
        self._handles: list[Any] = []

    def on_call(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any,
                path: str) -> None:
        """Called after each torch function with its arguments and result."""

    def on_enter(self, module: nn.Module, path: str, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        """Called before a module's forward."""

    def on_exit(self, module: nn.Module, path: str, output: Any) -> None:
        """Called after a module's forward."""

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.on_call(func, args, kwargs, out, self.stack[-1])
        return out

    def _pre(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        path = self.paths.get(module, "?")
        self.stack.append(path)
        self.on_enter(module, path, args, kwargs)

    def _post(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
              output: Any) -> None:
        path = self.stack.pop() if len(self.stack) > 1 else ""
        self.on_exit(module, path, output)

    def __enter__(self: _T) -> _T:
        for m in self.paths:
            self._handles.append(m.register_forward_pre_hook(self._pre, with_kwargs=True))
            self._handles.append(m.register_forward_hook(self._post, with_kwargs=True))
        try:
            super().__enter__()  # type: ignore[no-untyped-call]  # torch's is unannotated
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)  # type: ignore[no-untyped-call]  # torch's is unannotated
        finally:
            self._remove()

    def _remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


@dataclass
class Firing:
    """What dropped in one forward pass.

    Attributes:
        fired: module path -> (family, largest rate) of the dropout that dropped something
            there (``"dropout"``, ``"attention"`` or ``"stochastic_depth"``).
        random: module path -> names of random ops run there outside any known dropout.
    """

    fired: dict[str, tuple[str, float]] = field(default_factory=dict)
    random: dict[str, set[str]] = field(default_factory=dict)

    def add(self, path: str, family: str, rate: float) -> None:
        old = self.fired.get(path)
        self.fired[path] = (family, max(rate, old[1]) if old else rate)


def module_firing(module: nn.Module) -> tuple[str, float] | None:
    """(family, rate) when a dropout-like module drops something in its current mode."""
    family = module_family(module)
    if family is None or not module.training:
        return None
    if family == "owner":
        rate = owner_rate(module)
        family = "attention" if isinstance(module, nn.MultiheadAttention) else "rnn"
    else:
        rate = module_rate(module)
    if rate is None or rate <= 0:
        return None
    return ("module" if isinstance(module, DROPOUT_MODULES) else family), rate


class _FiringTracker(CallTracker):
    """Registry modules are judged whole (their inner calls are theirs); functional dropout and
    random ops elsewhere are judged call by call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.firing = Firing()
        self.inside = 0  # depth inside registry modules

    def on_enter(self, module: nn.Module, path: str, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        if module_family(module) is not None:
            self.inside += 1
            fired = module_firing(module)
            if fired is not None:
                self.firing.add(path, *fired)

    def on_exit(self, module: nn.Module, path: str, output: Any) -> None:
        if module_family(module) is not None:
            self.inside -= 1

    def on_call(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any,
                path: str) -> None:
        if self.inside:
            return
        seen = dropout_call(func, args, kwargs)
        if seen is not None:
            f, rate = seen
            if rate > 0:
                self.firing.add(path, "functional" if f.family == "dropout" else f.family, rate)
            return
        op = func_name(func)
        if op in RANDOM_OPS:
            self.firing.random.setdefault(path, set()).add(op)


def trace_firing(model: nn.Module, run: Callable[[], Any]) -> tuple[Firing, Any]:
    """Run ``run()`` (one forward of ``model``) and record what dropped; returns its output."""
    with _FiringTracker(model) as tracker:
        out = run()
    return tracker.firing, out


@contextmanager
def tracking(tracker: CallTracker) -> Iterator[CallTracker]:
    """``with tracking(t):`` for trackers built elsewhere (hooks removed on exit)."""
    with tracker:
        yield tracker
