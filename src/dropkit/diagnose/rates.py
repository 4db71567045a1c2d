"""`configured_rate`: the dropout rate a module is configured with, read from the model.

The dataflow records the rate a call *ran* with. That is not always the configured one: Hugging
Face attention passes ``dropout=0.0 if not self.training else self.attention_dropout`` to its
attention function, so while the module's flag is off (as `mc_mode` leaves it when it cannot
switch it) the call runs with p=0 although the model is configured with 0.1. The linter reads
the configured rate here before it calls anything "p=0".

Where the rate is read from, in order:

* a dropout module: its ``p``; ``nn.MultiheadAttention``: its ``dropout``;
* the module's own source: the expression it passes as a dropout rate (``p`` of an
  ``F.dropout*`` or ``drop_path`` call, ``dropout=`` / ``dropout_p=`` of any call), evaluated
  as under MC dropout (``self.training`` taken as True) with attribute reads only:
  ``self.attention_dropout``, ``self.dropout.p``, ``self.config.attention_dropout``;
* else a number attribute of the module named ``p`` or whose name holds ``drop``
  (``self.drop_rate``; torchvision's ``StochasticDepth.p``).
"""

from __future__ import annotations

import ast
import functools
import inspect
import operator
import textwrap
from dataclasses import dataclass

from torch import nn

from dropkit.mc.discover import DROPOUT_MODULES

# keywords that carry a dropout rate in any call (attention functions and interfaces)
_RATE_KEYWORDS = ("dropout", "dropout_p", "attention_dropout", "attn_dropout", "dropout_rate")


@dataclass(frozen=True)
class Rate:
    """A configured rate and where it was read (``"p"``, ``"self.attention_dropout"``, ...)."""

    p: float
    source: str


def _is_dropout_call(call: ast.Call) -> bool:
    f = call.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    return "drop" in name.lower()  # F.dropout*, and drop_path(x, self.drop_prob, ...)


@functools.lru_cache(maxsize=512)
def _rate_exprs(cls: type) -> tuple[tuple[str, str, bool], ...]:
    """(source text, self name, whether an ``F.dropout*`` call takes it) of every rate
    expression in the methods ``cls`` defines (not ``__init__``: rates passed there configure
    child modules, which are sites of their own)."""
    found: list[tuple[str, str, bool]] = []
    for klass in cls.__mro__:
        if klass in (nn.Module, object) or klass.__module__.startswith("torch."):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef) or fn.name == "__init__" or not fn.args.args:
                continue
            me = fn.args.args[0].arg
            for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
                exprs = [k.value for k in call.keywords if k.arg in _RATE_KEYWORDS]
                dropout = _is_dropout_call(call)
                if dropout:
                    exprs += [k.value for k in call.keywords if k.arg == "p"]
                    exprs += call.args[1:2]
                found += [(ast.unparse(e), me, dropout) for e in exprs]
    return tuple(dict.fromkeys(found))


class _AsUnderMC:
    """The module as seen by its own code under MC dropout: ``training`` is True."""

    def __init__(self, module: nn.Module) -> None:
        self._module = module

    def __getattr__(self, name: str) -> object:
        return True if name == "training" else getattr(self._module, name)


_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Gt: operator.gt,
            ast.GtE: operator.ge, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Is: operator.is_, ast.IsNot: operator.is_not}


def _evaluate(node: ast.expr, me: str, module: nn.Module) -> object:
    """Constants, ``self``, attribute reads, ``a if c else b``, ``not``, ``and``/``or`` and
    comparisons; anything else (a call, arithmetic) raises ValueError: the rate is unknown."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id == me:
        return _AsUnderMC(module)
    if isinstance(node, ast.Attribute):
        return getattr(_evaluate(node.value, me, module), node.attr)
    if isinstance(node, ast.IfExp):
        branch = node.body if _evaluate(node.test, me, module) else node.orelse
        return _evaluate(branch, me, module)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _evaluate(node.operand, me, module)
    if isinstance(node, ast.BoolOp):
        values = [_evaluate(v, me, module) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        left, right = _evaluate(node.left, me, module), _evaluate(node.comparators[0], me, module)
        return _COMPARE[type(node.ops[0])](left, right)
    raise ValueError(ast.dump(node))


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0.0 <= value <= 1.0 else None


def configured_rate(module: nn.Module, *, attention: bool = False) -> Rate | None:
    """The largest dropout rate ``module`` is configured with, or None when none can be read.

    ``attention=True`` reads only the rates passed to other calls than ``F.dropout*`` (an
    attention function's ``dropout_p``), so a module's own ``F.dropout`` rate is not taken for
    its attention's."""
    if isinstance(module, DROPOUT_MODULES):
        return Rate(float(module.p), "p")  # type: ignore[arg-type]
    if isinstance(module, nn.MultiheadAttention):
        return Rate(float(module.dropout), "dropout")
    rates: list[Rate] = []
    exprs = _rate_exprs(type(module))
    for text, me, dropout_call in exprs:
        if attention and dropout_call:
            continue
        try:
            p = _number(_evaluate(ast.parse(text, mode="eval").body, me, module))
        except Exception:  # noqa: BLE001 - an unreadable expression is an unknown rate
            p = None
        if p is not None:
            rates.append(Rate(p, text.replace(me + ".", "self.", 1)))
    if not exprs:  # no rate in the source (or none readable): a number attribute, if any
        rates = [Rate(p, f"self.{name}") for name, value in vars(module).items()
                 if (name == "p" or "drop" in name.lower()) and (p := _number(value)) is not None]
    return max(rates, key=lambda r: r.p, default=None)
