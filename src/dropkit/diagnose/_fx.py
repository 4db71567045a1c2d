"""The dataflow by torch.fx: trace the model symbolically, then run the graph on the input."""

from __future__ import annotations

import torch
from torch import fx, nn

from dropkit.diagnose.categories import function_category, module_category
from dropkit.diagnose.graph import Dataflow, Node
from dropkit.inspection.registry import module_rate, owner_rate
from dropkit.inspection.tracer import trace


def _leaf(m: nn.Module) -> bool:
    """Known layers (dropout, norms, linear, conv, attention, ...) are single nodes; composite
    modules, torch's own included (``TransformerEncoder``), are traced through."""
    return module_category(m) is not None


class _Shapes(fx.Interpreter):
    """Run the graph on real inputs, keeping each node's (first) output shape."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.extra_traceback = False  # the caller reports the failure in one line
        self.shapes: dict[fx.Node, tuple[int, ...]] = {}

    def run_node(self, n: fx.Node) -> object:
        out = super().run_node(n)
        first = out[0] if isinstance(out, tuple | list) and out else out
        if isinstance(first, torch.Tensor):
            self.shapes[n] = tuple(first.shape)
        return out


def _arg(node: fx.Node, index: int, keyword: str, default: object) -> object:
    if keyword in node.kwargs:
        return node.kwargs[keyword]
    return node.args[index] if len(node.args) > index else default


def _path(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    return str(list(stack.values())[-1][0])


def module_node(index: int, path: str, module: nn.Module, inputs: tuple[int, ...],
                shape: tuple[int, ...] | None) -> Node:
    """A node for a module run as one operation; dropout modules and owners carry ``p``."""
    op = module_category(module) or "other"
    name = type(module).__name__
    p: float | None = None
    kind: str | None = None
    if op == "dropout":
        p, kind = module_rate(module), "module"
    elif op == "stochastic_depth":
        p, kind = module_rate(module), "stochastic_depth"
    elif owner_rate(module) is not None:
        p = owner_rate(module)
        kind = "attention" if isinstance(module, nn.MultiheadAttention) else "rnn"
    return Node(index, op, name, path, inputs, shape, p, kind)


def function_node(index: int, name: str, path: str, inputs: tuple[int, ...],
                  shape: tuple[int, ...] | None, p_arg: object, attn_p: object) -> Node:
    """A node for a function call; ``p_arg`` / ``attn_p`` are its dropout rates if any."""
    op = function_category(name)
    bare = name.strip("_")
    p: float | None = None
    kind: str | None = None
    if op == "dropout" and isinstance(p_arg, int | float):
        p, kind = float(p_arg), "functional"
    elif op == "stochastic_depth" and isinstance(p_arg, int | float):
        p, kind = float(p_arg), "stochastic_depth"
    elif bare == "scaled_dot_product_attention" and isinstance(attn_p, int | float) and attn_p:
        p, kind = float(attn_p), "attention"
    return Node(index, op, bare, path, inputs, shape, p, kind)


def fx_dataflow(model: nn.Module, args: tuple[object, ...]) -> Dataflow:
    """Trace ``model`` and run the graph on ``args``; raises whatever tracing or running raises."""
    gm = trace(model, _leaf)
    graph = gm.graph
    run = _Shapes(gm)
    with torch.no_grad():
        run.run(*args)
    shape = run.shapes.get
    index: dict[fx.Node, int] = {}
    nodes: list[Node] = []
    for n in graph.nodes:
        if n.op == "get_attr":
            continue  # parameters and buffers: not dataflow between operations
        i = len(nodes)
        inputs = tuple(dict.fromkeys(index[a] for a in n.all_input_nodes if a in index))
        if n.op == "placeholder":
            node = Node(i, "input", str(n.target), "", (), shape(n))
        elif n.op == "output":
            node = Node(i, "output", "output", "", inputs)
        elif n.op == "call_module":
            node = module_node(i, str(n.target), gm.get_submodule(str(n.target)), inputs,
                               shape(n))
        else:
            name = n.target if n.op == "call_method" else getattr(n.target, "__name__", "")
            node = function_node(i, str(name), _path(n), inputs, shape(n),
                                 _arg(n, 1, "p", 0.5), _arg(n, 4, "dropout_p", 0.0))
        index[n] = i
        nodes.append(node)
    return Dataflow("fx", nodes)
