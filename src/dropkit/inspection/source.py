"""What a module class's own code does with its ``training`` flag, read from its source (``ast``).

For each user class (torch's own are known, not read) this lists the dropout-like calls in the
methods that ``forward`` (or ``__call__``) can reach, how each is gated, and the lines where the
flag gates anything else:

* ``F.dropout(x, p, training=self.training)`` and the other functions of `registry.FUNCTIONS`;
* ``if self.training: x = F.dropout(x, p)``;
* a *rate gate*: ``f(..., dropout=0.0 if not self.training else self.p)`` passed to any callable,
  as transformers 5.x passes attention dropout to its attention functions.

Methods that ``forward`` never calls (timm's ``reset_classifier``) do not count. What the source
says is checked at run time by `dropkit.inspection.tracker`: reading source is a first guess.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from dataclasses import dataclass
from typing import Any

from torch import nn

from dropkit.inspection.registry import (
    ATTENTION_RATE_KEYWORDS,
    FUNCTIONS,
    DropoutFunction,
    is_torch_class,
)


@dataclass(frozen=True)
class Call:
    """One dropout-like call in a class's source.

    ``family``: ``"dropout"``, ``"attention"`` or ``"stochastic_depth"``; ``gating``: ``"flag"``
    (``self.training``), ``"on"`` (always), ``"off"`` (never) or ``"other"`` (another
    expression); ``p_expr``: the source of the rate (evaluated by `read_rate`).
    """

    family: str
    gating: str
    p_expr: str | None
    line: int


@dataclass(frozen=True)
class ClassInfo:
    calls: tuple[Call, ...] = ()
    other_flag_uses: tuple[int, ...] = ()  # lines where self.training gates something else
    unreadable: bool = False
    self_names: tuple[str, ...] = ("self",)


class _Reader(ast.NodeVisitor):
    """Finds dropout-like calls and the ``self.training`` nodes that gate them."""

    def __init__(self, self_names: set[str]) -> None:
        self.self_names = self_names
        self.calls: list[tuple[str, str, ast.expr | None, int]] = []
        self.gating_nodes: set[int] = set()

    def is_flag(self, node: ast.AST) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "training"
                and isinstance(node.value, ast.Name) and node.value.id in self.self_names)

    def mentions_flag(self, node: ast.AST) -> bool:
        return any(self.is_flag(n) for n in ast.walk(node))

    def func(self, call: ast.Call) -> DropoutFunction | None:
        """The registry entry of the called function; None for ``self.<attr>(...)`` (a child
        module or method, found as a module) and for anything not dropout-like."""
        f = call.func
        if isinstance(f, ast.Attribute):
            if isinstance(f.value, ast.Name) and f.value.id in self.self_names:
                return None
            name = f.attr
        elif isinstance(f, ast.Name):
            name = f.id
        else:
            return None
        if name == "dropout" and any(k.arg == "active" for k in call.keywords):
            return DropoutFunction("dropout", 1, "p", 0.5, 99, "active", True, "dropout")
        return FUNCTIONS.get(name)

    def rate_gate(self, expr: ast.expr) -> ast.expr | None:
        """``X if self.training else 0`` (or ``0 if not self.training else X``): X."""
        if not (isinstance(expr, ast.IfExp) and self.mentions_flag(expr.test)):
            return None
        zero = [b for b in (expr.body, expr.orelse)
                if isinstance(b, ast.Constant) and not isinstance(b.value, bool)
                and b.value == 0]
        if len(zero) != 1:
            return None
        return expr.orelse if zero[0] is expr.body else expr.body

    def visit_If(self, node: ast.If) -> None:
        calls = [s.value for s in node.body if isinstance(s, (ast.Assign, ast.Expr))
                 and isinstance(s.value, ast.Call)]
        funcs = [self.func(c) for c in calls]
        if (self.is_flag(node.test) and not node.orelse and calls
                and len(calls) == len(node.body) and all(funcs)):
            self.mark(node.test)
            for c, f in zip(calls, funcs, strict=True):
                assert f is not None
                self.calls.append((f.family, "flag", _arg(c, f.p_index, f.p_kw), c.lineno))
                for arg in [*c.args, *(k.value for k in c.keywords)]:
                    self.visit(arg)
            return
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        f = self.func(node)
        if f is not None and f.training_kw is not None:
            flag = _arg(node, f.training_index, f.training_kw)
            p_expr = _arg(node, f.p_index, f.p_kw)
            gate = None if p_expr is None else self.rate_gate(p_expr)
            if gate is not None and p_expr is not None:  # F.dropout(x, p if self.training
                # else 0, training=True)
                self.mark(p_expr)
                gating, p_expr = "flag", gate
            else:
                gating = _gating(flag, f.training_default, self)
            if flag is not None:
                self.mark(flag)
            self.calls.append((f.family, gating, p_expr, node.lineno))
        else:
            rated: list[tuple[str | None, ast.expr | None]] = [
                (k.arg, k.value) for k in node.keywords]
            if f is not None:  # an attention function: its rate argument is its switch
                rated.append((f.p_kw, _arg(node, f.p_index, f.p_kw)))
            for kw, value in rated:
                if value is None:
                    continue
                gate = self.rate_gate(value)
                known = f is not None and kw == f.p_kw
                if gate is not None and (known or kw in ATTENTION_RATE_KEYWORDS):
                    self.mark(value)
                    self.calls.append(("attention", "flag", gate, node.lineno))
                elif known and not (isinstance(value, ast.Constant) and not value.value):
                    on = isinstance(value, ast.Constant)
                    self.mark(value)
                    self.calls.append(("attention", "on" if on else (
                        "flag" if self.mentions_flag(value) else "other"), value, node.lineno))
        self.generic_visit(node)

    def mark(self, expr: ast.AST) -> None:
        for n in ast.walk(expr):
            if self.is_flag(n):
                self.gating_nodes.add(id(n))


def _arg(call: ast.Call, index: int | None, keyword: str | None) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    return call.args[index] if index is not None and len(call.args) > index else None


def _gating(expr: ast.expr | None, default: bool, reader: _Reader) -> str:
    if expr is None:
        return "on" if default else "off"
    if isinstance(expr, ast.Constant):
        return "on" if bool(expr.value) else "off"
    return "flag" if reader.mentions_flag(expr) else "other"


def _functions(cls: type) -> dict[str, Any]:
    """The plain functions a user class and its user bases define, subclasses first."""
    out: dict[str, Any] = {}
    for klass in cls.__mro__:
        if is_torch_class(klass):
            continue
        for name, obj in vars(klass).items():
            fn = obj.__func__ if isinstance(obj, (staticmethod, classmethod)) else obj
            if inspect.isfunction(fn) and name not in out:
                out[name] = fn
    return out


def _parse(fn: Any) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, int] | None:
    """A method's own AST and first line; reads only that method's lines (fast, unlike a
    class's source, which makes ``inspect`` parse the whole module)."""
    try:
        lines, first = inspect.getsourcelines(fn)
    except (OSError, TypeError):
        return None
    try:
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except SyntaxError:
        return None
    node = tree.body[0] if tree.body else None
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return node, first
    return None


def class_info(cls: type) -> ClassInfo:
    """What the forward of ``cls`` (and the methods it calls) does with dropout (cached)."""
    # a plain function around the cache: mypy cannot match type[nn.Module] to lru_cache's
    # Hashable (Module declares __hash__ as an instance method)
    return _class_info(cls)


@functools.lru_cache(maxsize=1024)
def _class_info(cls: type) -> ClassInfo:
    """Read the dropout calls in the methods ``forward`` (or ``__call__``) reaches through
    ``self.<method>(...)`` calls, over the user classes of the MRO (torch's own classes are
    skipped: `registry` knows them)."""
    functions = _functions(cls)
    todo: list[str] = [n for n in ("forward", "__call__") if n in functions]
    parsed: dict[str, tuple[ast.FunctionDef | ast.AsyncFunctionDef, int]] = {}
    self_names: set[str] = {"self"}
    while todo:
        name = todo.pop()
        if name in parsed:
            continue
        got = _parse(functions[name])
        if got is None:
            return ClassInfo(unreadable=True)
        parsed[name] = got
        fn = got[0]
        if fn.args.args:
            self_names.add(fn.args.args[0].arg)
        for node in ast.walk(fn):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in self_names and node.func.attr in functions):
                todo.append(node.func.attr)
    calls: list[Call] = []
    other: list[int] = []
    for fn, first in parsed.values():
        reader = _Reader(self_names)
        reader.visit(fn)
        calls += [Call(fam, gating, None if p is None else ast.unparse(p), line + first - 1)
                  for fam, gating, p, line in reader.calls]
        other += [n.lineno + first - 1 for n in ast.walk(fn)
                  if isinstance(n, ast.expr) and reader.is_flag(n)
                  and id(n) not in reader.gating_nodes
                  and not isinstance(getattr(n, "ctx", None), ast.Store)]
    return ClassInfo(tuple(calls), tuple(sorted(set(other))), self_names=tuple(self_names))


_SAFE_NODES = (ast.Expression, ast.Attribute, ast.Name, ast.Constant, ast.IfExp, ast.Load,
               ast.Compare, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Eq, ast.Gt,
               ast.NotEq, ast.Lt, ast.Call)
_SAFE_CALLS = {"float": float, "int": int}


def read_rate(p_expr: str | None, module: nn.Module, self_names: tuple[str, ...]) -> float | None:
    """Evaluate a rate such as ``self.p`` or ``self.dropout.p`` on ``module``.

    The module's flag is taken as True (its value under MC dropout); only attribute reads and
    conditionals are evaluated, anything else (a call, a global) gives None.
    """
    if p_expr is None:
        return None
    try:
        tree = ast.parse(p_expr, mode="eval")
    except SyntaxError:
        return None
    if not all(isinstance(n, _SAFE_NODES) for n in ast.walk(tree)):
        return None
    if any(isinstance(n, ast.Call) and not (isinstance(n.func, ast.Name)
                                            and n.func.id in _SAFE_CALLS)
           for n in ast.walk(tree)):
        return None  # only float(...) and int(...) are called

    class _Training:  # `self` with training=True, other attributes read through
        def __getattr__(self, name: str) -> object:
            return True if name == "training" else getattr(module, name)

    try:
        scope = dict.fromkeys(self_names, _Training())
        value = eval(compile(tree, "<dropout p>", "eval"), {"__builtins__": _SAFE_CALLS}, scope)
        return float(value)
    except Exception:  # any failure just means "rate unknown"
        return None
