"""Find every dropout in a model and decide which of it dropkit can switch on.

Three kinds of dropout live in PyTorch models:

* **modules**: ``nn.Dropout``, ``Dropout1d/2d/3d``, ``AlphaDropout``, ``FeatureAlphaDropout`` and
  ``dropkit.nn.Dropout``, active while their own ``training`` flag is set;
* **built-in owners**: torch modules whose ``training`` flag gates dropout inside their own
  forward and nothing else that changes the math (``MultiheadAttention``'s attention dropout,
  the RNNs' inter-layer dropout, and the transformer layers, whose flag only picks a fused fast
  path that ignores their dropout);
* **functional**: ``F.dropout(x, p, training=self.training)`` or
  ``scaled_dot_product_attention(..., dropout_p=self.p if self.training else 0.0)`` written
  inside a user module's methods. These are found by reading the class source (``ast``): the
  module is controllable when ``self.training`` gates only dropout in it; when the same flag
  also switches other behaviour, or the dropout is hard-coded on (``training=True``, or
  ``F.dropout`` with its default), it is reported and left alone.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from dataclasses import dataclass, field

from torch import nn

from dropkit.nn.dropout import Dropout as DropkitDropout

DROPOUT_MODULES: tuple[type[nn.Module], ...] = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.FeatureAlphaDropout, DropkitDropout,
)

# name -> (index of the training argument, its keyword, its default when omitted)
_DROPOUT_FUNCS: dict[str, tuple[int, str, bool]] = {
    "dropout": (2, "training", True),
    "dropout1d": (2, "training", True),
    "dropout2d": (2, "training", True),
    "dropout3d": (2, "training", True),
    "feature_dropout": (2, "train", True),
    "alpha_dropout": (2, "training", False),
    "feature_alpha_dropout": (2, "training", False),
}
_ATTENTION_FUNCS = {"scaled_dot_product_attention": (4, "dropout_p")}


@dataclass(frozen=True)
class DropoutSite:
    """One place where a model applies dropout.

    Attributes:
        path: module path as in ``model.named_modules()`` (``""`` is the model itself).
        kind: ``"module"``, ``"functional"``, ``"attention"`` or ``"rnn"``.
        p: the drop probability when it can be read, else None.
        controllable: whether ``mc_mode`` can switch it on and off through a ``training`` flag.
        reason: why it is (not) controllable, in words.
        module_type: the class name of the module at ``path``.
        line: source line of functional dropout (None for modules).
    """

    path: str
    kind: str
    p: float | None
    controllable: bool
    reason: str
    module_type: str
    line: int | None = None


@dataclass(frozen=True)
class _Call:
    kind: str  # "functional" or "attention"
    gating: str  # "flag" (self.training), "on", "off", "other"
    p_expr: ast.expr | None
    line: int


@dataclass(frozen=True)
class _ClassInfo:
    calls: tuple[_Call, ...] = ()
    other_flag_uses: tuple[int, ...] = ()  # lines where self.training gates something else
    unreadable: bool = False
    self_names: tuple[str, ...] = ("self",)


# Names a class's methods give their first parameter ("self" by convention); set per class.
_SELF_NAMES: set[str] = {"self"}


def _is_self_training(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "training"
            and isinstance(node.value, ast.Name) and node.value.id in _SELF_NAMES)


def _mentions_self_training(node: ast.AST) -> bool:
    return any(_is_self_training(n) for n in ast.walk(node))


def _func_name(call: ast.Call) -> str | None:
    """The called function's name; None for ``self.<attr>(...)``, a child module (or method)
    such as nanoGPT's ``self.dropout(x)``, which is found as a module, not as functional."""
    f = call.func
    if isinstance(f, ast.Attribute):
        if isinstance(f.value, ast.Name) and f.value.id in _SELF_NAMES:
            return None
        return f.attr
    if isinstance(f, ast.Name):
        return f.id
    return None


def _arg(call: ast.Call, index: int, keyword: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    return call.args[index] if len(call.args) > index else None


def _gating(expr: ast.expr | None, default: bool) -> str:
    if expr is None:
        return "on" if default else "off"
    if isinstance(expr, ast.Constant):
        return "on" if bool(expr.value) else "off"
    return "flag" if _mentions_self_training(expr) else "other"


class _Finder(ast.NodeVisitor):
    def __init__(self) -> None:
        self.calls: list[_Call] = []
        self.gating_nodes: set[int] = set()  # ids of self.training nodes used to gate dropout

    def visit_If(self, node: ast.If) -> None:
        """``if self.training: x = F.dropout(x, p)``: dropout gated by the flag, nothing else."""
        calls = [s.value for s in node.body if isinstance(s, (ast.Assign, ast.Expr))
                 and isinstance(s.value, ast.Call)]
        if (_is_self_training(node.test) and not node.orelse and len(calls) == len(node.body)
                and all(_func_name(c) in _DROPOUT_FUNCS for c in calls)):
            self._mark(node.test)
            for c in calls:
                self.calls.append(_Call("functional", "flag", _arg(c, 1, "p"), c.lineno))
                for arg in [*c.args, *(k.value for k in c.keywords)]:
                    self.visit(arg)
            return
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = _func_name(node)
        if name in _DROPOUT_FUNCS or (name == "dropout" and any(k.arg == "active"
                                                               for k in node.keywords)):
            if any(k.arg == "active" for k in node.keywords):  # dropkit.functional.dropout
                flag = _arg(node, 99, "active")
                default = True
            else:
                idx, kw, default = _DROPOUT_FUNCS[name]  # type: ignore[index]
                flag = _arg(node, idx, kw)
            p_expr = _arg(node, 1, "p")
            self._record("functional", flag, default, p_expr, node)
        elif name in _ATTENTION_FUNCS:
            idx, kw = _ATTENTION_FUNCS[name]
            p_expr = _arg(node, idx, kw)
            if p_expr is not None and not (isinstance(p_expr, ast.Constant)
                                           and not p_expr.value):
                gating = "flag" if _mentions_self_training(p_expr) else (
                    "on" if isinstance(p_expr, ast.Constant) else "other")
                self._mark(p_expr)
                self.calls.append(_Call("attention", gating, p_expr, node.lineno))
        self.generic_visit(node)

    def _record(self, kind: str, flag: ast.expr | None, default: bool,
                p_expr: ast.expr | None, node: ast.Call) -> None:
        gating = _gating(flag, default)
        if flag is not None:
            self._mark(flag)
        self.calls.append(_Call(kind, gating, p_expr, node.lineno))

    def _mark(self, expr: ast.AST) -> None:
        for n in ast.walk(expr):
            if _is_self_training(n):
                self.gating_nodes.add(id(n))


@functools.lru_cache(maxsize=512)
def _class_info(cls: type) -> _ClassInfo:
    """Read the dropout calls in the methods a user class defines itself (not torch's)."""
    calls: list[_Call] = []
    other: list[int] = []
    _SELF_NAMES.clear()
    _SELF_NAMES.add("self")
    for klass in cls.__mro__:
        if klass is nn.Module or klass.__module__.startswith("torch.") or klass is object:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
            first = inspect.getsourcelines(klass)[1]
        except (OSError, TypeError):
            return _ClassInfo(unreadable=True)
        tree = ast.parse(source)
        _SELF_NAMES.update(f.args.args[0].arg for f in ast.walk(tree)
                           if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) and f.args.args)
        finder = _Finder()
        finder.visit(tree)
        calls += [_Call(c.kind, c.gating, c.p_expr, c.line + first - 1) for c in finder.calls]
        other += [n.lineno + first - 1 for n in ast.walk(tree)
                  if _is_self_training(n) and id(n) not in finder.gating_nodes
                  and not isinstance(getattr(n, "ctx", None), ast.Store)]
    return _ClassInfo(tuple(calls), tuple(other), self_names=tuple(_SELF_NAMES))


_SAFE_NODES = (ast.Expression, ast.Attribute, ast.Name, ast.Constant, ast.IfExp, ast.Load,
               ast.Compare, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Eq, ast.Gt)


def _eval_p(expr: ast.expr | None, module: nn.Module, self_names: tuple[str, ...]) -> float | None:
    """Read a drop probability such as ``self.p`` or ``self.dropout if self.training else 0``.

    Evaluated with the module's flag taken as True (the value it has under MC dropout); only
    attribute reads and conditionals are evaluated, anything else gives None.
    """
    if expr is None:
        return None
    tree = ast.Expression(expr)
    if not all(isinstance(n, _SAFE_NODES) for n in ast.walk(tree)):
        return None

    class _Training:  # `self` with training=True, other attributes read through
        def __getattr__(self, name: str) -> object:
            return True if name == "training" else getattr(module, name)

    try:
        scope = dict.fromkeys(self_names, _Training())
        value = eval(compile(tree, "<dropout p>", "eval"), {}, scope)
        return float(value)
    except Exception:  # noqa: BLE001 - any failure just means "p unknown"
        return None


def _owner_site(path: str, module: nn.Module) -> DropoutSite | None:
    name = type(module).__name__
    if isinstance(module, nn.MultiheadAttention) and module.dropout > 0:
        return DropoutSite(path, "attention", float(module.dropout), True,
                           "MultiheadAttention: its training flag gates only attention dropout",
                           name)
    if isinstance(module, nn.RNNBase) and module.dropout > 0 and module.num_layers > 1:
        return DropoutSite(path, "rnn", float(module.dropout), True,
                           "RNN inter-layer dropout, gated only by the training flag", name)
    return None


# Torch modules whose training flag must be on for their dropout children to run: in eval the
# transformer layers take a fused fast path that skips their dropout submodules.
_FAST_PATH_OWNERS: tuple[type[nn.Module], ...] = (
    nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
)


@dataclass
class Discovery:
    """Everything `find_dropout` learned about a model."""

    sites: list[DropoutSite] = field(default_factory=list)
    switch_on: list[str] = field(default_factory=list)  # paths whose flag mc_mode sets True
    unchecked: list[str] = field(default_factory=list)  # user classes whose source is unreadable

    @property
    def controllable(self) -> list[DropoutSite]:
        return [s for s in self.sites if s.controllable]

    @property
    def uncontrollable(self) -> list[DropoutSite]:
        return [s for s in self.sites if not s.controllable]


def find_dropout(model: nn.Module) -> Discovery:
    """List every dropout site of ``model`` and the module flags that control them.

    Reads modules and source code only; runs nothing and changes nothing.
    """
    found = Discovery()
    for path, module in model.named_modules():
        name = type(module).__name__
        if isinstance(module, DROPOUT_MODULES):
            found.sites.append(DropoutSite(path, "module", float(module.p), True,
                                           "dropout module", name))
            found.switch_on.append(path)
            continue
        owner = _owner_site(path, module)
        if owner is not None:
            found.sites.append(owner)
            found.switch_on.append(path)
        elif isinstance(module, _FAST_PATH_OWNERS):
            found.switch_on.append(path)
        if type(module).__module__.startswith("torch."):
            continue
        info = _class_info(type(module))
        if info.unreadable:
            found.unchecked.append(path)
            continue
        gated = [c for c in info.calls if c.gating == "flag"]
        for call in info.calls:
            p = _eval_p(call.p_expr, module, info.self_names)
            if call.gating == "off" or p == 0.0:
                continue
            if call.gating == "flag" and not info.other_flag_uses:
                site = DropoutSite(path, call.kind, p, True,
                                   "gated by this module's training flag, which gates nothing else",
                                   name, call.line)
            elif call.gating == "flag":
                lines = ", ".join(str(n) for n in info.other_flag_uses)
                site = DropoutSite(
                    path, call.kind, p, False,
                    f"gated by self.training, which also switches other behaviour (line {lines});"
                    " switching it on would change more than dropout", name, call.line)
            elif call.gating == "on":
                site = DropoutSite(path, call.kind, p, False,
                                   "hard-coded on (training=True or the default): always active,"
                                   " also in eval", name, call.line)
            else:
                site = DropoutSite(path, call.kind, p, False,
                                   "gated by an expression other than self.training", name,
                                   call.line)
            found.sites.append(site)
        if gated and not info.other_flag_uses and path not in found.switch_on:
            found.switch_on.append(path)
    return found
