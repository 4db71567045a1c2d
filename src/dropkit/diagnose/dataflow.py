"""`build_dataflow`: which operation feeds which, for every dropout site, on a real forward pass.

torch.fx is tried first (a symbolic trace, then the traced graph run on the example input); a
model it cannot trace (data-dependent control flow, ``TransformerEncoder``'s fast-path checks)
is run with forward hooks instead. ``Dataflow.method`` says which one built the graph and
``Dataflow.fx_error`` why fx was not used.

The pass runs as under Monte Carlo dropout, on a private copy of the module tree
(`dropkit.inspection.shadow`): every module in eval mode except the dropout carriers (stochastic
depth included, and flags decided by running the model where the source is ambiguous), so
BatchNorm statistics are not updated and the model's own flags never change; the global random
state is restored afterwards.
"""

from __future__ import annotations

import torch
from torch import nn

from dropkit._validate import check_choice
from dropkit.diagnose._borrow import as_args, check_model, forked_rng, forward_error
from dropkit.diagnose._fx import fx_dataflow
from dropkit.diagnose._hooks import hooks_dataflow
from dropkit.diagnose.graph import Dataflow
from dropkit.errors import DropkitValueError, expected
from dropkit.inspection.discover import find_dropout, resolve
from dropkit.inspection.shadow import set_flags, shadow

METHODS = ("auto", "fx", "hooks")


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"


def build_dataflow(model: nn.Module, example_input: object, *, method: str = "auto") -> Dataflow:
    """The dataflow graph of ``model`` on ``example_input`` (a tensor or tuple of arguments).

    Args:
        model: any ``nn.Module``; borrowed (flags, buffers, parameters and RNG restored).
        example_input: one forward's input; a batch of 2 or more rows is safest.
        method: ``"auto"`` (fx, else hooks), ``"fx"`` or ``"hooks"``.
    """
    model = check_model(model)
    args = as_args(example_input)
    method = check_choice("method", method, METHODS)
    fx_error: str | None = None
    with forked_rng(model), torch.no_grad():
        try:
            found = resolve(model, find_dropout(model, stochastic_depth=True),
                            lambda m: m(*args))
        except Exception as exc:  # the user's forward failed on their input
            raise forward_error(exc, example_input) from exc
        model = set_flags(shadow(model), set(found.switch_on))
        if method != "hooks":
            try:
                return fx_dataflow(model, args)
            except Exception as exc:  # any fx failure falls back to hooks
                if method == "fx":
                    raise DropkitValueError(expected(
                        "model", "a model torch.fx can trace and run on the input (or use "
                        "method='auto' or 'hooks')", _first_line(exc))) from exc
                fx_error = _first_line(exc)
        try:
            flow = hooks_dataflow(model, args)
        except Exception as exc:  # the user's forward failed on their input
            raise forward_error(exc, example_input) from exc
    flow.fx_error = fx_error
    return flow
