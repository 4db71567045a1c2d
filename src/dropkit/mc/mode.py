"""`mc_mode`: switch on exactly a model's dropout, in place, for the duration of a block.

`dropkit.sample` and `MCDropout` do not need it (they sample from a private copy of the module
tree); `mc_mode` is for calling the model yourself with dropout on. It changes the flags of the
model itself, so while the block runs other threads calling the same model see its dropout on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from torch import nn

from dropkit._validate import check_choice
from dropkit.inspection.borrow import check_model, flags_restored
from dropkit.inspection.discover import Discovery, DropoutSite, find_dropout, require_fired
from dropkit.mc.sampling import check_flag


@dataclass
class MCModeReport:
    """What `mc_mode` switched on and what it found but could not control.

    Attributes:
        stochastic: module paths whose ``training`` flag is on inside the block.
        sites: every dropout site found (see `DropoutSite`), stochastic depth included.
        uncontrollable: sites left as they are (hard-coded on, gated on a flag that also
            switches other behaviour, or stochastic depth without ``stochastic_depth=True``).
        unchecked: paths of user modules whose source could not be read, so functional dropout
            inside them (if any) is unknown to this static report (`dropkit.sample` and
            `MCDropout` check them by running the model).
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


def require_dropout(found: Discovery) -> None:
    """Raise `NoDropoutError` unless some switched dropout has a non-zero (or unknown) rate
    (static; `dropkit.sample` and `MCDropout` also check that it fires)."""
    require_fired(found)


@contextmanager
def mc_mode(model: nn.Module, *, on_missing: str = "raise",
            stochastic_depth: bool = False) -> Iterator[MCModeReport]:
    """Make exactly the dropout in ``model`` stochastic for the duration of the block.

    Inside the block every module is in eval mode (BatchNorm uses its running statistics and
    never updates them) except the modules that carry controllable dropout, whose ``training``
    flag is set. On exit every module's flag is restored to what it was, also when the block
    raises; parameters and buffers are never written. Blocks nest. Not thread-safe by design:
    the model itself is switched (use `dropkit.sample`/`MCDropout` in servers).

    Args:
        model: any ``nn.Module``; borrowed, restored on exit.
        on_missing: ``"raise"`` (default) raises `NoDropoutError` when the model has no
            controllable dropout; ``"ignore"`` yields the (empty) report instead.
        stochastic_depth: also switch on stochastic depth (see `dropkit.sample`).

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
    model = check_model(model)
    check_choice("on_missing", on_missing, ("raise", "ignore"))
    found = find_dropout(model, stochastic_depth=check_flag("stochastic_depth",
                                                            stochastic_depth))
    if on_missing == "raise":
        require_dropout(found)
    on = set(found.switch_on)
    with flags_restored(model):
        for path, m in model.named_modules():
            m.training = path in on
        yield MCModeReport.from_discovery(found)
