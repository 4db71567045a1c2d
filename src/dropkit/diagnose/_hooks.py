"""The dataflow by forward hooks: run the model once and match each operation's input tensors
to the operations that produced them.

Forward pre/post hooks on every module keep the current module path and make known layers one
node each; a `TorchFunctionMode` sees every torch function called in between (``F.dropout``,
``scaled_dot_product_attention``, ``+``, ``torch.cat``, ...). Works on any module, including
ones with data-dependent control flow that torch.fx cannot trace.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from dropkit.diagnose._fx import function_node, module_node
from dropkit.diagnose.categories import module_category
from dropkit.diagnose.graph import Dataflow, Node
from dropkit.inspection.tracker import CallTracker, func_name


def _tensors(obj: object) -> list[torch.Tensor]:
    return [t for t in tree_leaves(obj) if isinstance(t, torch.Tensor)]


def _shape(tensors: list[torch.Tensor]) -> tuple[int, ...] | None:
    return tuple(tensors[0].shape) if tensors else None


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, keyword: str,
         default: object) -> object:
    if keyword in kwargs:
        return kwargs[keyword]
    return args[index] if len(args) > index else default


class _Recorder(CallTracker):
    """Known layers are one node each (what runs inside them is theirs); every other torch call
    is a node, linked to the nodes that produced its input tensors."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.nodes: list[Node] = []
        self.producer: dict[int, int] = {}  # id(tensor) -> node index
        self.keep: list[torch.Tensor] = []  # keeps ids unique for the whole pass
        self.opaque = 0  # depth inside a module recorded as one node
        self.frames: list[list[torch.Tensor]] = []

    def _inputs(self, tensors: list[torch.Tensor]) -> tuple[int, ...]:
        return tuple(dict.fromkeys(self.producer[id(t)] for t in tensors
                                   if id(t) in self.producer))

    def add(self, make: Any, inputs: tuple[int, ...], outputs: list[torch.Tensor]) -> Node:
        node: Node = make(len(self.nodes), inputs)
        self.nodes.append(node)
        for t in outputs:
            self.producer[id(t)] = node.index
            self.keep.append(t)
        return node

    def on_call(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any,
                path: str) -> None:
        if self.opaque:
            return
        outputs = _tensors(out)
        if not outputs:
            return
        inputs = self._inputs(_tensors((args, kwargs)))
        name, shape = func_name(func), _shape(outputs)
        p, attn_p = _arg(args, kwargs, 1, "p", 0.5), _arg(args, kwargs, 4, "dropout_p", 0.0)
        self.add(lambda i, ins: function_node(i, name, path, ins, shape, p, attn_p),
                 inputs, outputs)

    def on_enter(self, module: nn.Module, path: str, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        if self.opaque:
            self.opaque += 1
        elif module_category(module) is not None:
            self.opaque = 1
            self.frames.append(_tensors((args, kwargs)))

    def on_exit(self, module: nn.Module, path: str, output: Any) -> None:
        if not self.opaque:
            return
        self.opaque -= 1
        if self.opaque == 0:
            inputs = self._inputs(self.frames.pop())
            outputs = _tensors(output)
            self.add(lambda i, ins: module_node(i, path, module, ins, _shape(outputs)),
                     inputs, outputs)


def hooks_dataflow(model: nn.Module, args: tuple[object, ...]) -> Dataflow:
    """Run ``model(*args)`` once and record its dataflow; hooks are removed on exit."""
    rec = _Recorder(model)
    for t in _tensors(args):
        shape = tuple(t.shape)
        rec.add(lambda i, ins, s=shape: Node(i, "input", "input", "", ins, s), (), [t])
    with torch.no_grad(), rec:
        out = model(*args)
    outs = _tensors(out)
    rec.add(lambda i, ins: Node(i, "output", "output", "", ins), rec._inputs(outs), [])
    return Dataflow("hooks", rec.nodes)
