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
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from dropkit.diagnose._fx import function_node, module_node
from dropkit.diagnose.categories import module_category
from dropkit.diagnose.graph import Dataflow, Node


def _tensors(obj: object) -> list[torch.Tensor]:
    return [t for t in tree_leaves(obj) if isinstance(t, torch.Tensor)]


def _shape(tensors: list[torch.Tensor]) -> tuple[int, ...] | None:
    return tuple(tensors[0].shape) if tensors else None


def _name(func: Any) -> str:
    name = getattr(func, "__name__", "")
    if name == "__get__":  # a property such as x.T or x.data: name it by the property
        name = getattr(getattr(func, "__self__", None), "__name__", name)
    return str(name)


def _arg(args: tuple, kwargs: dict, index: int, keyword: str, default: object) -> object:
    if keyword in kwargs:
        return kwargs[keyword]
    return args[index] if len(args) > index else default


class _Recorder(TorchFunctionMode):
    def __init__(self, paths: dict[nn.Module, str]) -> None:
        super().__init__()
        self.paths = paths
        self.nodes: list[Node] = []
        self.producer: dict[int, int] = {}  # id(tensor) -> node index
        self.keep: list[torch.Tensor] = []  # keeps ids unique for the whole pass
        self.stack: list[str] = [""]
        self.opaque = 0  # depth inside a module recorded as one node
        self.frames: list[list[torch.Tensor]] = []

    def _inputs(self, tensors: list[torch.Tensor]) -> tuple[int, ...]:
        return tuple(dict.fromkeys(self.producer[id(t)] for t in tensors
                                   if id(t) in self.producer))

    def add(self, make: Any, inputs: tuple[int, ...], outputs: list[torch.Tensor]) -> Node:
        node = make(len(self.nodes), inputs)
        self.nodes.append(node)
        for t in outputs:
            self.producer[id(t)] = node.index
            self.keep.append(t)
        return node

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.opaque:
            return out
        outputs = _tensors(out)
        if not outputs:
            return out
        inputs = self._inputs(_tensors((args, kwargs)))
        name, path, shape = _name(func), self.stack[-1], _shape(outputs)
        p, attn_p = _arg(args, kwargs, 1, "p", 0.5), _arg(args, kwargs, 4, "dropout_p", 0.0)
        self.add(lambda i, ins: function_node(i, name, path, ins, shape, p, attn_p),
                 inputs, outputs)
        return out

    def pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.stack.append(self.paths.get(module, "?"))
        if self.opaque:
            self.opaque += 1
        elif module_category(module) is not None:
            self.opaque = 1
            self.frames.append(_tensors((args, kwargs)))

    def post_hook(self, module: nn.Module, args: tuple, kwargs: dict, output: object) -> None:
        path = self.stack.pop()
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
    paths = {m: p for p, m in model.named_modules()}
    rec = _Recorder(paths)
    for t in _tensors(args):
        shape = tuple(t.shape)
        rec.add(lambda i, ins, s=shape: Node(i, "input", "input", "", ins, s), (), [t])
    handles = []
    try:
        for m in paths:
            handles.append(m.register_forward_pre_hook(rec.pre_hook, with_kwargs=True))
            handles.append(m.register_forward_hook(rec.post_hook, with_kwargs=True))
        with torch.no_grad(), rec:
            out = model(*args)
    finally:
        for h in handles:
            h.remove()
    outs = _tensors(out)
    rec.add(lambda i, ins: Node(i, "output", "output", "", ins), rec._inputs(outs), [])
    return Dataflow("hooks", rec.nodes)
