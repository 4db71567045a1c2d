"""Graph-based cached-prefix sampling: run every deterministic op once, the rest S times.

The model is traced with ``torch.fx`` (under `mc_mode`, so functional dropout gated by
``self.training`` is recorded as active). Each node is *deterministic* when all its inputs are,
and *sampled* when it is a stochastic op (dropout module, ``F.dropout(training=True)``,
``scaled_dot_product_attention`` with ``dropout_p > 0``, a random method) or reads a sampled
value. Deterministic nodes run once on the B input rows; sampled nodes run on ``c * B`` rows
(c samples of the batch, row ``s * B + b``). A deterministic batched value is expanded to
``c * B`` rows lazily, only where a sampled node reads it: this is what keeps residual skips,
several outputs and dropout in several places correct.

Rows are laid out exactly as in the stacked strategy (the batch repeated c times), and the
stochastic ops draw their masks in the same order and shapes, so with the same seed and
``fast_masks=False`` the cached samples equal the stacked ones to float tolerance.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from dropkit.inspection.registry import FUNCTIONS, TORCH_FUNCTIONS, module_family
from dropkit.inspection.tracer import trace
from dropkit.mc.inputs import ModelInputs

_RANDOM_WITH_INPUT = {torch.bernoulli, torch.rand_like, torch.randn_like, torch.randint_like,
                      torch.poisson, torch.multinomial, torch.normal}
_RANDOM_SOURCES = {torch.rand, torch.randn, torch.randint, torch.randperm}
_RANDOM_METHODS = {"bernoulli", "bernoulli_", "uniform_", "normal_", "random_", "exponential_",
                   "geometric_", "cauchy_", "log_normal_", "multinomial"}
_INPLACE_FUNCS = {operator.iadd, operator.isub, operator.imul, operator.itruediv}


class GraphUnsupported(Exception):
    """The model cannot be run by the cached graph (the message says why)."""


def _leaf(m: nn.Module) -> bool | None:
    """Dropout-like modules (stochastic depth included) run whole, once per sample row."""
    return True if module_family(m) in ("dropout", "stochastic_depth") else None


def _arg(node: fx.Node, index: int | None, keyword: str | None, default: Any) -> Any:
    if keyword is not None and keyword in node.kwargs:
        return node.kwargs[keyword]
    return node.args[index] if index is not None and len(node.args) > index else default


def _is_stochastic(node: fx.Node, gm: fx.GraphModule, stochastic_paths: set[str]) -> bool:
    if node.op == "call_module":
        return any(node.target == p or p.startswith(f"{node.target}.") for p in stochastic_paths)
    if node.op == "call_function":
        name = TORCH_FUNCTIONS.get(node.target)  # type: ignore[arg-type]
        if name is not None:
            f = FUNCTIONS[name]
            p = _arg(node, f.p_index, f.p_kw, f.p_default)
            on = _arg(node, f.training_index, f.training_kw, f.training_default)
            return bool(on) and not (isinstance(p, (int, float)) and p == 0)
        if node.target in _RANDOM_SOURCES:
            raise GraphUnsupported(f"random op {node.target.__name__} creates a tensor with no "
                                   "batched input; its shape cannot follow the sample expansion")
        return node.target in _RANDOM_WITH_INPUT
    if node.op == "call_method":
        return node.target in _RANDOM_METHODS
    return False


def _fast_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout with the mask drawn as ``U < 1 - p``: same law as ``F.dropout``.

    Four in-place passes (rand, compare, multiply, scale) and no bool tensor: on a CPU this is
    about 3x cheaper than ``bernoulli_``, which dominates a dropout layer's cost.
    """
    keep = 1.0 - p
    out = torch.rand_like(x)
    out.lt_(keep)
    out.mul_(x)
    return out.mul_(1.0 / keep)


def _fast_version(node: fx.Node, gm: fx.GraphModule) -> Callable[[Any, Any], Any] | None:
    """A faster twin of a plain elementwise inverted dropout node, or None."""
    if node.op == "call_module":
        m = gm.get_submodule(str(node.target))
        if type(m) is nn.Dropout and not m.inplace and m.p > 0:
            p = float(m.p)
            return lambda args, kwargs: _fast_dropout(args[0], p)
    if node.op == "call_function" and node.target is F.dropout:
        p, inplace = _arg(node, 1, "p", 0.5), _arg(node, 3, "inplace", False)
        if isinstance(p, float) and not inplace and 0 < p < 1:
            return lambda args, kwargs: _fast_dropout(args[0], p)
    return None


@dataclass
class GraphPlan:
    """A traced model split into the part that runs once and the part that runs per sample."""

    gm: fx.GraphModule
    nodes: list[fx.Node]
    sampled: set[fx.Node]
    prefix_ops: int  # deterministic compute nodes on batched values (work saved per sample)
    first_stochastic: str
    forced: set[fx.Node] = field(default_factory=set)  # det values expanded early (see _classify)
    fast: dict[fx.Node, Callable[[Any, Any], Any]] = field(default_factory=dict)
    expand_at: set[fx.Node] = field(default_factory=set)  # det nodes read by sampled nodes
    last_use: dict[fx.Node, int] = field(default_factory=dict)

    @property
    def has_prefix(self) -> bool:
        return self.prefix_ops > 0


def build_plan(model: nn.Module, stochastic_paths: list[str]) -> GraphPlan:
    """Trace ``model`` (which must be in mc_mode) and classify each node.

    Raises `GraphUnsupported` when the model cannot be traced or uses randomness the plan
    cannot expand.
    """
    try:
        gm = trace(model, _leaf)
    except Exception as err:  # any tracing failure means "use another strategy"
        raise GraphUnsupported(f"torch.fx could not trace the model ({type(err).__name__}: "
                               f"{str(err).splitlines()[0] if str(err) else ''})") from err
    paths = set(stochastic_paths)
    nodes = list(gm.graph.nodes)
    forced: set[fx.Node] = set()
    while True:  # promote tensors whose batch size a sampled op reads, until nothing changes
        sampled, batched, prefix_ops, first = _classify(nodes, gm, paths, forced)
        more = {src for node in sampled for n in node.all_input_nodes
                if n not in sampled and _is_meta(n) for src in _meta_sources(n)} - forced
        if not more:
            break
        forced |= more
    forced = {n for n in forced if not any(i in sampled for i in n.all_input_nodes)}
    plan = GraphPlan(gm, nodes, sampled, prefix_ops, first, forced=forced)
    out_node = nodes[-1]
    for i, node in enumerate(nodes):
        for n in node.all_input_nodes:
            plan.last_use[n] = i
        if node in sampled or node is out_node:
            plan.expand_at.update(n for n in node.all_input_nodes if n not in sampled)
        if node in plan.forced:
            plan.expand_at.add(node)
        fast = _fast_version(node, gm) if node in sampled else None
        if fast is not None:
            plan.fast[node] = fast
    return plan


_META_ATTRS = {"shape"}
_META_METHODS = {"size", "dim", "numel"}


def _is_meta(node: fx.Node) -> bool:
    """A shape value (an int or a size) derived from a tensor, not a tensor itself."""
    if node.op == "call_function" and node.target is getattr:
        return len(node.args) > 1 and node.args[1] in _META_ATTRS
    if node.op == "call_method":
        return node.target in _META_METHODS
    if node.op == "call_function" and node.target in (operator.getitem, operator.mul,
                                                      operator.add, operator.floordiv, len):
        return bool(node.all_input_nodes) and all(_is_meta(n) for n in node.all_input_nodes)
    return False


def _meta_sources(node: fx.Node) -> set[fx.Node]:
    """The tensors a shape value was read from."""
    out: set[fx.Node] = set()
    for n in node.all_input_nodes:
        out |= _meta_sources(n) if _is_meta(n) else {n}
    return out


def _classify(nodes: list[fx.Node], gm: fx.GraphModule, paths: set[str], forced: set[fx.Node]
              ) -> tuple[set[fx.Node], set[fx.Node], int, str]:
    """Sampled nodes (stochastic, forced, or reading a sampled value) and batched det nodes.

    A node in ``forced`` is a deterministic tensor whose shape a sampled op reads (such as
    ``b, t, d = x.shape`` and later ``y.reshape(b, t, d)``): it is expanded before that read, so
    the sizes read from it count the ``c * B`` rows.
    """
    sampled: set[fx.Node] = set()
    batched: set[fx.Node] = set()
    prefix_ops, first = 0, ""
    for node in nodes:
        inputs = node.all_input_nodes
        if node.op == "placeholder":
            batched.add(node)
            if node in forced:
                sampled.add(node)
            continue
        if node.op == "output":
            continue
        if node in forced and not any(n in sampled for n in inputs):
            sampled.add(node)  # computed once, then expanded before anything reads it
            continue
        stochastic = _is_stochastic(node, gm, paths)
        if stochastic or any(n in sampled for n in inputs):
            if not first and stochastic:
                first = str(node.target) if node.op != "call_function" else getattr(
                    node.target, "__name__", str(node.target))
            sampled.add(node)
            inplace = (node.op == "call_function" and node.target in _INPLACE_FUNCS
                       or node.op == "call_method" and str(node.target).endswith("_")
                       and node.target not in _RANDOM_METHODS)
            if (inplace and node.args and isinstance(node.args[0], fx.Node)
                    and node.args[0] not in sampled):
                raise GraphUnsupported(f"in-place op {node.target} writes a deterministic "
                                           "value from a sampled one")
        elif any(n in batched for n in inputs):
            batched.add(node)
            if node.op in ("call_module", "call_function", "call_method") and not _is_meta(node):
                prefix_ops += 1
    if not sampled:
        raise GraphUnsupported("no stochastic op found in the traced graph")
    return sampled, batched, prefix_ops, first


def _fetch_attr(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _run_node(gm: fx.GraphModule, node: fx.Node, args: Any, kwargs: Any) -> Any:
    if node.op == "call_module":
        return gm.get_submodule(str(node.target))(*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)  # type: ignore[operator]
    if node.op == "call_method":
        obj, *rest = args
        return getattr(obj, str(node.target))(*rest, **kwargs)
    if node.op == "get_attr":
        return _fetch_attr(gm, str(node.target))
    raise GraphUnsupported(f"unexpected node kind {node.op}")


def _expand(value: Any, copies: int, b: int) -> Any:
    """``(B, ...)`` -> ``(copies * B, ...)``, row ``s * B + b``; other values pass through."""
    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == b:
        return value.unsqueeze(0).expand(copies, *value.shape).reshape(copies * b,
                                                                       *value.shape[1:])
    if isinstance(value, (tuple, list)):
        return type(value)(_expand(v, copies, b) for v in value)
    return value


def _bind(plan: GraphPlan, inputs: ModelInputs) -> dict[fx.Node, Any]:
    """Placeholder values: positional inputs in order, keywords by name, else the forward's
    own default (never None for an argument that has a default)."""
    values: dict[fx.Node, Any] = {}
    args = list(inputs.args)
    for node in plan.nodes:
        if node.op != "placeholder":
            continue
        name = str(node.target).lstrip("*")
        if args:
            values[node] = args.pop(0)
        elif name in inputs.kwargs:
            values[node] = inputs.kwargs[name]
        elif node.args:
            values[node] = node.args[0]
        else:
            raise GraphUnsupported(f"no value for the forward argument {name!r}")
    extra = set(inputs.kwargs) - {str(n.target).lstrip("*") for n in values}
    if args or extra:
        raise GraphUnsupported("the traced forward does not take all the inputs given")
    return values


def run_prefix(plan: GraphPlan, inputs: ModelInputs) -> dict[fx.Node, Any]:
    """Run the deterministic nodes once on the B rows; keep what the sampled part reads."""
    env: dict[fx.Node, Any] = {}
    bound = _bind(plan, inputs)
    out_node = plan.nodes[-1]
    for i, node in enumerate(plan.nodes):
        if node in plan.sampled and node not in plan.forced or node is out_node:
            continue
        if node.op == "placeholder":
            env[node] = bound[node]
            continue
        args = fx.node.map_arg(node.args, env.__getitem__)
        kwargs = fx.node.map_arg(node.kwargs, env.__getitem__)
        env[node] = _run_node(plan.gm, node, args, kwargs)
        for n in node.all_input_nodes:  # free det values nothing later needs
            if plan.last_use.get(n, -1) <= i and n not in plan.expand_at:
                env.pop(n, None)
    return {n: v for n, v in env.items() if n in plan.expand_at}


def run_suffix(plan: GraphPlan, cache: dict[fx.Node, Any], copies: int, b: int, *,
               fast_masks: bool) -> Any:
    """Run the sampled nodes on ``copies * B`` rows; returns the model output for them."""
    env: dict[fx.Node, Any] = {}
    expanded: dict[fx.Node, Any] = {}

    def read(n: fx.Node) -> Any:
        if n in env:
            return env[n]
        if n not in expanded:
            expanded[n] = _expand(cache[n], copies, b)
        return expanded[n]

    out_node = plan.nodes[-1]
    for i, node in enumerate(plan.nodes):
        if node is out_node:
            return fx.node.map_arg(node.args[0], read)
        if node not in plan.sampled:
            continue
        if node in plan.forced:
            env[node] = _expand(cache[node], copies, b)
            continue
        args = fx.node.map_arg(node.args, read)
        kwargs = fx.node.map_arg(node.kwargs, read)
        fast = plan.fast.get(node) if fast_masks else None
        env[node] = fast(args, kwargs) if fast is not None else _run_node(plan.gm, node, args,
                                                                          kwargs)
        for n in node.all_input_nodes:  # free what no later node reads (keeps peak memory low)
            if plan.last_use.get(n, -1) <= i:
                env.pop(n, None)
                expanded.pop(n, None)
    raise GraphUnsupported("graph has no output node")
