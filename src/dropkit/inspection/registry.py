"""The one table of what counts as dropout in a PyTorch model.

Three families, each with the rate it drops and how it is switched:

* **dropout**: ``torch.nn`` dropout modules and ``dropkit.nn.Dropout`` (their own ``training``
  flag), and the functional forms ``F.dropout*``/``torch.dropout`` (a ``training`` argument);
* **attention dropout**: ``scaled_dot_product_attention(dropout_p=...)`` and the attention
  functions of transformers 5.x, which take ``dropout=`` as a plain rate that the calling module
  sets to 0 outside training;
* **stochastic depth**: timm ``DropPath``, torchvision ``StochasticDepth`` and transformers'
  ``*DropPath`` modules (whole residual branches dropped per sample), and their functions. They
  are matched by class name and rate attribute so that no library has to be imported.

Owners: torch modules whose ``training`` flag gates dropout inside their own forward and nothing
else that changes the math (``MultiheadAttention``, RNNs with inter-layer dropout, and the
transformer layers, whose flag only picks a fused fast path that skips their dropout).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dropkit.nn.dropout import Dropout as DropkitDropout

DROPOUT_MODULES: tuple[type[nn.Module], ...] = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.FeatureAlphaDropout, DropkitDropout,
)

# Class names of stochastic-depth modules in timm, torchvision and transformers (where every
# model family defines its own ``<Family>DropPath``), with the attribute that holds the rate.
_STOCHASTIC_DEPTH_NAMES = ("DropPath", "StochasticDepth")
_RATE_ATTRS = ("drop_prob", "p", "drop_rate")


@dataclass(frozen=True)
class DropoutFunction:
    """A dropout-like function: where its rate and its on/off switch are in a call.

    ``training_index``/``training_kw`` locate the switch (None: the function has none and the
    rate alone decides, as for attention functions); ``training_default`` is its value when the
    call omits it; ``family`` is ``"dropout"``, ``"attention"`` or ``"stochastic_depth"``.
    """

    name: str
    p_index: int
    p_kw: str
    p_default: float
    training_index: int | None
    training_kw: str | None
    training_default: bool
    family: str


def _fn(name: str, p: tuple[int, str, float], training: tuple[int | None, str | None, bool],
        family: str = "dropout") -> DropoutFunction:
    return DropoutFunction(name, *p, *training, family)


#: by function name, as written in source and as seen at run time
FUNCTIONS: dict[str, DropoutFunction] = {f.name: f for f in (
    _fn("dropout", (1, "p", 0.5), (2, "training", True)),
    _fn("dropout1d", (1, "p", 0.5), (2, "training", True)),
    _fn("dropout2d", (1, "p", 0.5), (2, "training", True)),
    _fn("dropout3d", (1, "p", 0.5), (2, "training", True)),
    _fn("feature_dropout", (1, "p", 0.5), (2, "train", True)),
    # F.alpha_dropout and F.feature_alpha_dropout default to training=False, the others to True
    _fn("alpha_dropout", (1, "p", 0.5), (2, "training", False)),
    _fn("feature_alpha_dropout", (1, "p", 0.5), (2, "training", False)),
    _fn("scaled_dot_product_attention", (4, "dropout_p", 0.0), (None, None, True), "attention"),
    # timm.layers.drop_path(x, drop_prob, training, scale_by_keep); HF's drop_path(x, p, training)
    _fn("drop_path", (1, "drop_prob", 0.0), (2, "training", False), "stochastic_depth"),
    # torchvision.ops.stochastic_depth(input, p, mode, training)
    _fn("stochastic_depth", (1, "p", 0.5), (3, "training", True), "stochastic_depth"),
)}

#: the function objects torch.fx records as call targets, by the name above
TORCH_FUNCTIONS: dict[Callable[..., Any], str] = {
    F.dropout: "dropout", F.dropout1d: "dropout1d", F.dropout2d: "dropout2d",
    F.dropout3d: "dropout3d", F.alpha_dropout: "alpha_dropout",
    F.feature_alpha_dropout: "feature_alpha_dropout", torch.dropout: "dropout",
    torch.feature_dropout: "feature_dropout", torch.alpha_dropout: "alpha_dropout",
    torch.feature_alpha_dropout: "feature_alpha_dropout",
    F.scaled_dot_product_attention: "scaled_dot_product_attention",
}

#: keyword names under which attention functions take their dropout rate (transformers 5.x
#: ``attention_interface(..., dropout=...)``, flash-style ``dropout_p=``)
ATTENTION_RATE_KEYWORDS = frozenset({"dropout", "dropout_p", "attention_dropout", "attn_drop",
                                     "dropout_rate"})

# Torch modules whose training flag must be on for their dropout children to run: in eval the
# transformer layers take a fused fast path that skips their dropout submodules.
FAST_PATH_OWNERS: tuple[type[nn.Module], ...] = (
    nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
)


def call_arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int | None,
             keyword: str | None, default: Any) -> Any:
    """The value of one argument of a call, positional or keyword, else ``default``."""
    if keyword is not None and keyword in kwargs:
        return kwargs[keyword]
    if index is not None and len(args) > index:
        return args[index]
    return default


def dropout_call(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
                 ) -> tuple[DropoutFunction, float] | None:
    """For a torch function call seen at run time: its registry entry and the rate it drops
    with (0.0 when it is off or its rate is 0), or None when it is not dropout-like."""
    name = TORCH_FUNCTIONS.get(func)
    if name is None:
        return None
    f = FUNCTIONS[name]
    rate = call_arg(args, kwargs, f.p_index, f.p_kw, f.p_default)
    on = call_arg(args, kwargs, f.training_index, f.training_kw, f.training_default)
    fired = isinstance(rate, (int, float)) and rate > 0 and bool(on)
    return f, float(rate) if fired else 0.0


def is_stochastic_depth(module: nn.Module) -> bool:
    """timm ``DropPath``, torchvision ``StochasticDepth``, transformers ``<Family>DropPath``."""
    name = type(module).__name__
    return (any(name.endswith(n) for n in _STOCHASTIC_DEPTH_NAMES)
            and module_rate(module) is not None)


def module_rate(module: nn.Module) -> float | None:
    """The drop rate a dropout-like module is configured with, when it can be read."""
    for attr in _RATE_ATTRS:
        value = getattr(module, attr, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def module_family(module: nn.Module) -> str | None:
    """``"dropout"``, ``"stochastic_depth"``, ``"owner"`` or None (not dropout-like)."""
    if isinstance(module, DROPOUT_MODULES):
        return "dropout"
    if is_stochastic_depth(module):
        return "stochastic_depth"
    if owner_rate(module) is not None or isinstance(module, FAST_PATH_OWNERS):
        return "owner"
    return None


def owner_rate(module: nn.Module) -> float | None:
    """Rate of the dropout a torch owner module gates with its flag (None: not an owner)."""
    if isinstance(module, nn.MultiheadAttention) and module.dropout > 0:
        return float(module.dropout)
    if isinstance(module, nn.RNNBase) and module.dropout > 0 and module.num_layers > 1:
        return float(module.dropout)
    return None


def is_torch_class(cls: type) -> bool:
    """Classes whose code dropkit knows (torch's own), rather than reads."""
    return cls is nn.Module or cls is object or cls.__module__.startswith("torch.")
