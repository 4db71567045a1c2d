"""`configured_rate`: the dropout rate a module is configured with, read from the model.

The dataflow records the rate a call *ran* with. That is not always the configured one: Hugging
Face attention passes ``dropout=0.0 if not self.training else self.attention_dropout`` to its
attention function, so while the module's flag is off the call runs with p=0 although the model
is configured with 0.1. The linter reads the configured rate here before it calls anything
"p=0".

Where the rate is read from, in order:

* a dropout-like module (`dropkit.inspection.registry`): its rate attribute;
  ``nn.MultiheadAttention``: its ``dropout``;
* the module's own source, through the one source reader (`dropkit.inspection.source`): the
  rate of each dropout-like call its ``forward`` reaches, evaluated as under MC dropout
  (``self.training`` taken as True);
* else a number attribute of the module named ``p`` or whose name holds ``drop``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from dropkit.inspection.registry import module_rate, owner_rate
from dropkit.inspection.source import class_info, read_rate


@dataclass(frozen=True)
class Rate:
    """A configured rate and where it was read (``"p"``, ``"self.attention_dropout"``, ...)."""

    p: float
    source: str


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0.0 <= value <= 1.0 else None


def configured_rate(module: nn.Module, *, attention: bool = False) -> Rate | None:
    """The largest dropout rate ``module`` is configured with, or None when none can be read.

    ``attention=True`` reads only the rates of attention calls (an attention function's
    ``dropout``/``dropout_p``), so a module's own ``F.dropout`` rate is not taken for its
    attention's."""
    if isinstance(module, nn.MultiheadAttention):
        return Rate(float(module.dropout), "dropout")
    own = module_rate(module) if owner_rate(module) is None else owner_rate(module)
    if own is not None and not attention and _number(own) is not None and (
            type(module).__module__.startswith("torch.") or hasattr(module, "p")
            or hasattr(module, "drop_prob")):
        return Rate(own, "p" if hasattr(module, "p") else "drop_prob")
    info = class_info(type(module))
    rates = []
    for call in info.calls:
        if attention and call.family != "attention":
            continue
        p = _number(read_rate(call.p_expr, module, info.self_names))
        if p is not None and call.p_expr is not None:
            me = next((n for n in info.self_names if call.p_expr.startswith(n + ".")), "self")
            rates.append(Rate(p, call.p_expr.replace(me + ".", "self.", 1)))
    if not info.calls:  # no rate in the source (or none readable): a number attribute, if any
        rates = [Rate(p, f"self.{name}") for name, value in vars(module).items()
                 if (name == "p" or "drop" in name.lower()) and (p := _number(value)) is not None]
    return max(rates, key=lambda r: r.p, default=None)
