"""`mc_mode`: switch on exactly a model's dropout for Monte Carlo inference, then restore it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from torch import nn

from dropkit._validate import check_choice
from dropkit.errors import DropkitTypeError, NoDropoutError, expected
from dropkit.mc.discover import Discovery, DropoutSite, find_dropout


@dataclass
class MCModeReport:
    """What `mc_mode` switched on and what it found but could not control.

    Attributes:
        stochastic: module paths whose ``training`` flag is on inside the block.
        sites: every dropout site found (see `DropoutSite`).
        uncontrollable: sites left as they are (hard-coded on, or gated on a flag that also
            switches other behaviour).
        unchecked: paths of user modules whose source could not be read, so functional dropout
            inside them (if any) is unknown.
    """

    stochastic: list[str] = field(default_factory=list)
    sites: list[DropoutSite] = field(default_factory=list)
    uncontrollable: list[DropoutSite] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    @classmethod
    def from_discovery(cls, found: Discovery) -> MCModeReport:
        return cls(list(found.switch_on), list(found.sites), found.uncontrollable,
                   list(found.unchecked))

    def __str__(self) -> str:
        lines = [f"mc_mode: {len(self.stochastic)} module(s) stochastic"]
        lines += [f"  on    {s.path or '<root>'} ({s.module_type}, {s.kind}, p={s.p})"
                  for s in self.sites if s.controllable]
        lines += [f"  LEFT  {s.path or '<root>'} ({s.module_type}, {s.kind}): {s.reason}"
                  for s in self.uncontrollable]
        lines += [f"  ?     {p}: source unreadable, functional dropout unknown"
                  for p in self.unchecked]
        return "\n".join(lines)


def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise DropkitTypeError(expected("model", "a torch.nn.Module", type(model).__name__))
    return model


def require_dropout(found: Discovery) -> None:
    """Raise `NoDropoutError` unless some controllable dropout has a non-zero rate."""
    live = [s for s in found.controllable if s.p is None or s.p > 0]
    if live:
        return
    detail = "no dropout at all"
    if found.controllable:
        detail = "only dropout with p=0"
    elif found.uncontrollable:
        detail = "only dropout it cannot switch: " + "; ".join(
            f"{s.path or '<root>'}: {s.reason}" for s in found.uncontrollable)
    raise NoDropoutError(
        expected("model", "a model with dropout that can be switched on (a dropout module, or "
                 "F.dropout(..., training=self.training) in a module's forward)", detail)
        + " Add a dropout layer (e.g. dropkit.nn.Dropout) before the layers you want"
        " uncertainty from, or run `dropkit lint` to see where dropout is.")


@contextmanager
def mc_mode(model: nn.Module, *, on_missing: str = "raise") -> Iterator[MCModeReport]:
    """Make exactly the dropout in ``model`` stochastic for the duration of the block.

    Inside the block every module is in eval mode (BatchNorm uses its running statistics and
    never updates them) except the modules that carry controllable dropout, whose ``training``
    flag is set. On exit every module's flag is restored to what it was, also when the block
    raises; parameters and buffers are never written. Blocks nest.

    Args:
        model: any ``nn.Module``; borrowed, restored on exit.
        on_missing: ``"raise"`` (default) raises `NoDropoutError` when the model has no
            controllable dropout; ``"ignore"`` yields the (empty) report instead.

    Yields:
        An `MCModeReport` of what was switched on and what was found but left alone.

    Example:
        >>> import torch, dropkit
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5))
        >>> with dropkit.mc_mode(net) as report:
        ...     print(report.stochastic)
        ['1']
        >>> net.training
        True
    """
    model = _check_model(model)
    check_choice("on_missing", on_missing, ("raise", "ignore"))
    found = find_dropout(model)
    if on_missing == "raise":
        require_dropout(found)
    saved = [(m, m.training) for m in model.modules()]
    switch = dict(model.named_modules())
    try:
        for m, _ in saved:
            m.training = False
        for path in found.switch_on:
            switch[path].training = True
        yield MCModeReport.from_discovery(found)
    finally:
        for m, flag in saved:
            m.training = flag
