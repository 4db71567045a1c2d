"""An independent oracle for Monte Carlo dropout tests: which dropout fired, and what train mode
gives. Nothing here reads dropkit's code or tables.

`FiringTrace` watches torch itself: a ``TorchFunctionMode`` sees every torch function called
while it is active, and forward pre/post hooks on every module of the model keep a stack of
module paths, so each dropout-like call is attributed to the innermost module running when it
was made (its *site*; ``""`` is the root). The mode sees:

* ``F.dropout``, ``F.dropout1d/2d/3d``, ``F.alpha_dropout``, ``F.feature_alpha_dropout`` and
  the ``torch.dropout`` family (``dropout``, ``feature_dropout``, ``alpha_dropout``,
  ``feature_alpha_dropout``, their in-place forms, ``native_dropout``): it fires when
  ``training`` is true and ``p > 0``; rate ``p``.
* ``F.scaled_dot_product_attention`` with ``dropout_p > 0`` (SDPA ignores ``training``) and
  ``F.multi_head_attention_forward`` (``nn.MultiheadAttention``) with ``training`` and
  ``dropout_p > 0``; rate ``dropout_p``.
* ``Tensor.bernoulli_``, ``Tensor.bernoulli``, ``torch.bernoulli`` (timm's ``drop_path`` and
  torchvision's ``stochastic_depth``: ``bernoulli_(keep)``): rate ``1 - keep`` (the mean of a
  probability tensor); always fires.
* ``torch.rand``, ``torch.rand_like``, ``Tensor.uniform_``, ``torch.randint`` and
  ``torch.randint_like`` (masks built from uniform draws, e.g. HF ``drop_path``'s
  ``floor(keep + rand)`` or ``rand < keep``): always fires; the rate is read from the first
  comparison or addition of the draw with a Python number (``u < c`` / ``u <= c`` / ``c + u``:
  rate ``1 - c``; ``u > c`` / ``u >= c``: rate ``c``), and is NaN when none follows.

"Fired" means the op took its random branch with a drop rate > 0, not that a given entry was
zeroed: with a per-sample drop path of rate 0.1 on 2 samples, often no sample is dropped.

Calls made while no module of the model is running are keyed ``"<outside>"`` (dropout
applied by the caller, or code that torch.fx inlined into a graph the trace does not hook);
uniform draws there are ignored (seeding and RNG bookkeeping draw them).

What it cannot see: dropout written by hand without any of these functions (for example a
mask from ``torch.randn(...) > c``); ops the mode does not know or cannot enter: a custom
C++/Triton kernel, flash-attn's own functions (transformers' ``flash_attention_2``), the
internals of ``torch.compile``d code; and ops called inside an op the mode already saw (its
handler runs with the mode off: ``F.dropout``'s own ``_VF.dropout`` or the dropout inside
``multi_head_attention_forward`` are not counted twice). Other function modes (dropkit's own
trackers) stack with this one: a call re-dispatched by them still reaches it.

Attribution is only as good as the hooks: a module whose ``forward`` is called directly
instead of through ``__call__`` is invisible, so its calls go to the enclosing module; under
torch.fx a traced module's inlined dropout goes to the nearest hooked module still running, or
to ``"<outside>"``.

Sites are counted per *pass* (a forward of an outermost module): when a module makes several
dropout-like calls in one pass (T5 calls ``encoder.dropout`` twice; RoBERTa's head calls its
one dropout module twice), its n-th call is keyed ``"path#n"`` for n >= 2, so repeated passes
(S samples) map onto the same keys. Inactive calls count in that numbering (the n-th call is
positional, the same in eval and train mode), except where a library skips the call
altogether when inactive (timm's ``drop_path`` returns early): keep such ops in their own
module, as timm and torchvision do, for stable keys.
"""

from __future__ import annotations

import hashlib
import math
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.overrides import TorchFunctionMode

Inputs = torch.Tensor | tuple | Mapping[str, Any]


def call(model: nn.Module, inputs: Inputs) -> Any:
    """``model(**inputs)`` for a mapping, ``model(*inputs)`` for a tuple, else ``model(inputs)``."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


def output_tensor(out: Any) -> torch.Tensor:
    """The prediction in a model's return value: ``.logits`` of a transformers ``ModelOutput``,
    the first element of a tuple, or the tensor itself."""
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(out, tuple | list) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TypeError(f"no tensor found in a model output of type {type(out).__name__}")


# ------------------------------------------------------------------------------------------
# the trace
# ------------------------------------------------------------------------------------------


@dataclass
class Call:
    """One dropout-like call: where, which op, its drop rate and whether it fired."""

    site: str
    op: str
    rate: float
    fired: bool


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _dropout_family() -> dict[Any, tuple[str, bool | None]]:
    """function -> (name of its training flag, its default; None: required)."""
    table: dict[Any, tuple[str, bool | None]] = {
        F.dropout: ("training", True), F.dropout1d: ("training", True),
        F.dropout2d: ("training", True), F.dropout3d: ("training", True),
        F.alpha_dropout: ("training", False), F.feature_alpha_dropout: ("training", False),
    }
    for name in ("dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout"):
        for fn in (getattr(torch, name, None), getattr(torch, name + "_", None)):
            if fn is not None:
                table[fn] = ("train", None)
    table[torch.native_dropout] = ("train", True)  # train=None means True there
    return table


OUTSIDE = "<outside>"  # the site of a dropout call made while no module of the model runs
_DROPOUT = _dropout_family()
_BERNOULLI = {torch.bernoulli, torch.Tensor.bernoulli, torch.Tensor.bernoulli_}
_UNIFORM = {torch.rand, torch.rand_like, torch.Tensor.uniform_, torch.randint,
            torch.randint_like}
# comparisons/additions that give a uniform draw its rate: name -> rate from the constant c
_KEEP_BELOW = {"lt", "le", "__lt__", "__le__", "add", "__add__", "__radd__", "add_"}
_KEEP_ABOVE = {"gt", "ge", "__gt__", "__ge__"}


class _Mode(TorchFunctionMode):
    def __init__(self, trace: FiringTrace) -> None:
        super().__init__()
        self.trace = trace

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)  # the mode is off inside: nested calls are not seen
        self.trace._observe(func, args, kwargs, out)
        return out


@dataclass
class FiringTrace:
    """Context manager recording every dropout-like call made while it is open.

    ``with FiringTrace(model) as tr: anything()`` then ``tr.firing()`` / ``tr.calls``. The
    model is borrowed: only hooks are added, and removed on exit (also on error).
    """

    model: nn.Module
    calls: list[Call] = field(default_factory=list)
    _stack: list[str] = field(default_factory=list)
    _per_pass: dict[str, int] = field(default_factory=dict)
    _draws: dict[int, tuple[weakref.ref, int]] = field(default_factory=dict)

    def __enter__(self) -> FiringTrace:
        self._handles = []
        for name, m in self.model.named_modules():
            self._handles.append(m.register_forward_pre_hook(self._push(name)))
            self._handles.append(m.register_forward_hook(self._pop, always_call=True))
        self._mode = _Mode(self)
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._mode.__exit__(*exc)
        for h in self._handles:
            h.remove()

    def _push(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            if not self._stack:
                self._per_pass.clear()  # a new outermost pass: site numbering starts again
            self._stack.append(name)

        return hook

    def _pop(self, module: nn.Module, args: Any, out: Any) -> None:
        if self._stack:
            self._stack.pop()

    def _record(self, op: str, rate: float, fired: bool) -> int:
        where = self._stack[-1] if self._stack else OUTSIDE
        n = self._per_pass.get(where, 0) + 1
        self._per_pass[where] = n
        self.calls.append(Call(where if n == 1 else f"{where}#{n}", op, rate, fired))
        return len(self.calls) - 1

    def _observe(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        name = getattr(func, "__name__", str(func))
        if func in _DROPOUT:
            flag, default = _DROPOUT[func]
            p = float(_arg(args, kwargs, 1, "p", 0.5))
            training = _arg(args, kwargs, 2, flag, default)
            training = True if training is None else bool(training)
            self._record(name, p, training and p > 0)
        elif func is F.scaled_dot_product_attention:
            p = float(_arg(args, kwargs, 4, "dropout_p", 0.0))
            self._record(name, p, p > 0)
        elif func is F.multi_head_attention_forward:
            p = float(_arg(args, kwargs, 10, "dropout_p", 0.0))
            self._record(name, p, bool(_arg(args, kwargs, 13, "training", True)) and p > 0)
        elif func in _BERNOULLI:
            keep = _arg(args, kwargs, 1, "p", None)
            if keep is None:  # bernoulli(probs) / probs.bernoulli(); bernoulli_() keeps half
                keep = 0.5 if func is torch.Tensor.bernoulli_ else args[0]
            if isinstance(keep, torch.Tensor):
                keep = keep.double().mean().item()
            self._record(name, round(1.0 - float(keep), 6), True)
        elif func in _UNIFORM and isinstance(out, torch.Tensor) and self._stack:
            # uniform draws outside the model's forward are seeding or bookkeeping, not masks
            i = self._record(name, math.nan, True)
            self._draws[id(out)] = (weakref.ref(out), i)
        elif name in _KEEP_BELOW or name in _KEEP_ABOVE:
            self._rate_from_use(name, args)

    def _rate_from_use(self, name: str, args: tuple) -> None:
        if len(args) != 2:
            return
        for t, c in (args, args[::-1]):
            hit = self._draws.get(id(t))
            if hit is not None and hit[0]() is t and isinstance(c, int | float):
                call = self.calls[hit[1]]
                if math.isnan(call.rate):
                    call.rate = round(1.0 - c if name in _KEEP_BELOW else float(c), 6)

    def firing(self) -> dict[str, float]:
        """``{site: rate}`` of every call that fired (over all passes seen)."""
        return {c.site: c.rate for c in self.calls if c.fired}


def trace_firing(model: nn.Module, inputs: Inputs) -> dict[str, float]:
    """One forward of ``model`` as it is (its flags are not changed), under ``no_grad``:
    ``{site: rate}`` of every dropout-like op that fired (see the module docstring)."""
    with FiringTrace(model) as tr, torch.no_grad():
        call(model, inputs)
    return tr.firing()


def true_sites(model: nn.Module, inputs: Inputs) -> dict[str, float]:
    """The sites that fire with everything in train mode but BatchNorm: what MC dropout (with
    stochastic depth on) must fire. The model's flags are restored afterwards."""
    with train_but_batchnorm(model):
        return trace_firing(model, inputs)


class Interrupt(RuntimeError):
    """Raised by `fail_at`: a failure injected mid-way through a call."""


@contextmanager
def fail_at(module: nn.Module, call_number: int) -> Iterator[None]:
    """Make the ``call_number``-th forward (1-based) of ``module`` inside the block raise
    `Interrupt` after it ran, to test that a model is restored after a failure mid-way (for
    example during the 3rd of S sampling passes). The hook is removed on exit."""
    seen = [0]

    def hook(mod: nn.Module, args: Any, out: Any) -> None:
        seen[0] += 1
        if seen[0] == call_number:
            raise Interrupt(f"injected failure at forward call {call_number}")

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


# ------------------------------------------------------------------------------------------
# the train-mode reference and comparisons
# ------------------------------------------------------------------------------------------


@contextmanager
def train_but_batchnorm(model: nn.Module) -> Iterator[nn.Module]:
    """``model.train()`` with every ``_BatchNorm`` in eval; each module's flag restored after."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.train()
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.eval()
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def train_reference(model: nn.Module, inputs: Inputs, samples: int, seed: int) -> torch.Tensor:
    """``(S, B, ...)``: ``samples`` outputs with everything in train mode but BatchNorm (the
    reference an MC dropout mean must match within MC error). Draws from a forked global RNG
    seeded with ``seed``; the model's flags are restored afterwards."""
    with torch.random.fork_rng(devices=[]), torch.no_grad(), train_but_batchnorm(model):
        torch.manual_seed(seed)
        return torch.stack([output_tensor(call(model, inputs)) for _ in range(samples)])


def mean_z(samples: torch.Tensor, ref: torch.Tensor, floor: float = 1e-5) -> torch.Tensor:
    """Per-element |difference of the two sample means| / its standard error, in float64; the
    standard error is floored at ``floor * (1 + |mean|)`` so deterministic elements compare
    with a relative tolerance instead of dividing by zero."""
    a, b = samples.double(), ref.double()
    se = (a.var(0) / a.shape[0] + b.var(0) / b.shape[0]).sqrt()
    se = torch.maximum(se, floor * (1 + b.mean(0).abs()))
    return (a.mean(0) - b.mean(0)).abs() / se


def assert_mean_close(samples: torch.Tensor, ref: torch.Tensor, z: float = 5.0,
                      floor: float = 1e-5) -> None:
    """Both ``(S, ...)`` Monte Carlo sample sets have the same mean, element by element, within
    ``z`` standard errors (see `mean_z`)."""
    if samples.shape[1:] != ref.shape[1:]:
        raise AssertionError(f"shapes differ: {tuple(samples.shape)} vs {tuple(ref.shape)}")
    zs = mean_z(samples, ref, floor)
    worst = int(zs.argmax())
    if not bool(zs.max() <= z):  # also fails on NaN
        raise AssertionError(f"means differ by {zs.max().item():.2f} standard errors at flat "
                             f"index {worst} (limit {z}); "
                             f"{(zs > z).sum().item()} of {zs.numel()} elements over")


def state_fingerprint(model: nn.Module) -> dict[str, Any]:
    """Everything "borrowed" about a model, for bitwise-unchanged checks: a SHA-256 of the bytes
    of every parameter and buffer (with dtype, shape, requires_grad), and per module its class,
    ``training`` flag, public scalar attributes (dropout ``p``, HF float rates, ...), the
    number of hooks of each kind, and whether ``forward`` is patched on the instance; the root's
    ``config`` scalars when it has one (transformers)."""
    fp: dict[str, Any] = {}
    for kind, named in (("param", model.named_parameters(remove_duplicate=False)),
                        ("buffer", model.named_buffers(remove_duplicate=False))):
        for name, t in named:
            raw = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
            fp[f"{kind}:{name}"] = (str(t.dtype), tuple(t.shape), t.requires_grad,
                                    hashlib.sha256(raw).hexdigest())
    for name, m in model.named_modules(remove_duplicate=False):
        scalars = {k: v for k, v in vars(m).items() if not k.startswith("_")
                   and k != "training" and isinstance(v, bool | int | float | str | None)}
        hooks = tuple(len(getattr(m, h, {})) for h in (
            "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
            "_state_dict_hooks", "_load_state_dict_pre_hooks"))
        fp[f"module:{name}"] = (type(m).__qualname__, m.training, sorted(scalars.items()),
                                hooks, "forward" in vars(m))
    config = getattr(model, "config", None)
    if config is not None:
        fp["config"] = sorted((k, v) for k, v in vars(config).items()
                              if isinstance(v, bool | int | float | str | None))
    return fp
