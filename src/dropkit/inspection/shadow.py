"""A shadow of a user's model: the same parameters and buffers, its own flags.

Monte Carlo dropout needs some modules in training mode while the user's model stays as it is:
other threads may call the model in eval at the same time (a server), and an interrupted run
must leave nothing switched. `shadow` copies the module *objects* (their attribute dicts), not
their tensors: every parameter and buffer is the user's own tensor, so in-place weight updates
are seen, and only the ``training`` flags (and anything dropkit attaches, such as hooks) are
private to the shadow.

`fingerprint` is what a shadow (and every plan built on one) depends on: the module tree, the
identity of each parameter and buffer, each module's plain attributes (rates such as ``p``) and
the code each module runs. A changed fingerprint means: build again.
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch import nn


def _copy_module(module: nn.Module, memo: dict[int, nn.Module]) -> nn.Module:
    if id(module) in memo:  # a submodule used in two places stays one module
        return memo[id(module)]
    new = module.__class__.__new__(module.__class__)
    memo[id(module)] = new
    state = dict(module.__dict__)
    for key, value in state.items():
        # hook tables, parameter/buffer dicts, sets: own containers, same contents
        if key.startswith("_") and isinstance(value, (dict, set)):
            state[key] = value.copy()
    forward = state.get("forward")
    if isinstance(forward, types.MethodType) and forward.__self__ is module:
        state["forward"] = types.MethodType(forward.__func__, new)
    state["_modules"] = {name: None if child is None else _copy_module(child, memo)
                         for name, child in module._modules.items()}
    new.__dict__.update(state)
    return new


def shadow(model: nn.Module) -> nn.Module:
    """A module tree like ``model`` sharing all its tensors, with flags of its own."""
    return _copy_module(model, {})


def set_flags(model: nn.Module, on: frozenset[str] | set[str]) -> nn.Module:
    """Every module in eval mode except the paths in ``on``; returns ``model``."""
    for path, m in model.named_modules():
        m.training = path in on
    return model


def fingerprint(model: nn.Module) -> tuple[Any, ...]:
    """What plans for ``model`` depend on (cheap: identities, no tensor data).

    Per module: its identity and class (and so the class's code), the identity of every
    attribute value (a rate set to 0.9 is a new object; an instance-level ``forward`` too), of
    its parameters, buffers and children, and its forward hooks. Runs on every sampling call,
    so it reads identities only (no tensor, no comparison of values). Switching the model's own
    flags and back leaves it unchanged; leaving them switched rebuilds the plans once.
    """
    parts: list[Any] = []
    add, extend = parts.append, parts.extend
    for m in model.modules():
        d = m.__dict__
        params, buffers, children = d["_parameters"], d["_buffers"], d["_modules"]
        add((id(m), type(m), len(d), len(params), len(buffers), len(children),
             len(d["_forward_hooks"]), len(d["_forward_pre_hooks"])))
        extend(map(id, d.values()))
        extend(map(id, params.values()))
        extend(map(id, buffers.values()))
        extend(map(id, children.values()))
        extend(d["_forward_hooks"])
        extend(d["_forward_pre_hooks"])
    return tuple(parts)


def is_lazy(t: torch.Tensor) -> bool:
    return isinstance(t, (nn.UninitializedParameter, nn.UninitializedBuffer))
