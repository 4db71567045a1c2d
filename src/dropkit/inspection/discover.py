"""Find every dropout in a model, decide which flags switch it, and check that at run time.

`find_dropout` reads the model (modules through `registry`, user code through `source`) and
runs nothing. Where the source is ambiguous (a class whose ``self.training`` gates dropout *and*
something else, or a class whose source cannot be read) `resolve` decides with the input: it
runs the model with that one flag on and off and compares every torch call; the flag is switched
only when dropout is all it changes. `reconcile` then compares what discovery reports with what
fired in a real pass (`tracker.trace_firing`), so a reported site that did not fire, or dropout
that fired without being reported, is visible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

from dropkit.errors import NoDropoutError, expected
from dropkit.inspection.borrow import check_model
from dropkit.inspection.registry import (
    FAST_PATH_OWNERS,
    dropout_call,
    is_torch_class,
    module_family,
    module_rate,
    owner_rate,
)
from dropkit.inspection.shadow import set_flags, shadow
from dropkit.inspection.source import class_info, read_rate
from dropkit.inspection.tracker import RANDOM_OPS, CallTracker, Firing, func_name, trace_firing


@dataclass(frozen=True)
class DropoutSite:
    """One place where a model applies dropout.

    Attributes:
        path: module path as in ``model.named_modules()`` (``""`` is the model itself).
        kind: ``"module"``, ``"functional"``, ``"attention"``, ``"rnn"`` or
            ``"stochastic_depth"``.
        p: the drop probability when it can be read, else None.
        controllable: whether dropkit can switch it on and off through a ``training`` flag.
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


@dataclass
class Discovery:
    """Everything `find_dropout` learned about a model.

    ``switch_on``: the paths whose flag is set under MC dropout; ``unchecked``: user modules
    whose source could not be read; ``ambiguous``: paths whose flag gates dropout and maybe
    more, to be decided at run time by `resolve`.
    """

    sites: list[DropoutSite] = field(default_factory=list)
    switch_on: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)
    stochastic_depth: bool = False

    @property
    def controllable(self) -> list[DropoutSite]:
        return [s for s in self.sites if s.controllable]

    @property
    def uncontrollable(self) -> list[DropoutSite]:
        return [s for s in self.sites if not s.controllable]

    @property
    def live(self) -> list[DropoutSite]:
        """Controllable sites that will drop something under MC dropout (p > 0 or unknown)."""
        on = set(self.switch_on)
        return [s for s in self.controllable if s.path in on and (s.p is None or s.p > 0)]


_DEPTH_OFF = ("stochastic depth: left off unless stochastic_depth=True (it drops whole residual "
              "branches, a different approximate posterior than the model's dropout)")


def _module_site(path: str, module: nn.Module, stochastic_depth: bool) -> DropoutSite | None:
    name = type(module).__name__
    family = module_family(module)
    if family == "dropout":
        return DropoutSite(path, "module", module_rate(module), True, "dropout module", name)
    if family == "stochastic_depth":
        return DropoutSite(path, "stochastic_depth", module_rate(module), stochastic_depth,
                           "stochastic-depth module" if stochastic_depth else _DEPTH_OFF, name)
    rate = owner_rate(module)
    if rate is not None:
        kind = "attention" if isinstance(module, nn.MultiheadAttention) else "rnn"
        return DropoutSite(path, kind, rate, True,
                           f"{name}: its training flag gates only its {kind} dropout", name)
    return None


def _code_sites(path: str, module: nn.Module, found: Discovery) -> None:
    """Sites of functional dropout in a user module's own code."""
    name = type(module).__name__
    info = class_info(type(module))
    if info.unreadable:
        found.unchecked.append(path)
        found.ambiguous.append(path)
        return
    switch = False
    for call in info.calls:
        p = read_rate(call.p_expr, module, info.self_names)
        if call.gating == "off":
            continue  # written with training=False: never active
        kind = "functional" if call.family == "dropout" else call.family
        depth_off = kind == "stochastic_depth" and not found.stochastic_depth
        if call.gating == "flag" and not info.other_flag_uses:
            site = DropoutSite(path, kind, p, not depth_off, _DEPTH_OFF if depth_off else
                               "gated by this module's training flag, which gates nothing else",
                               name, call.line)
            switch = switch or not depth_off
        elif call.gating == "flag":
            lines = ", ".join(str(n) for n in info.other_flag_uses)
            site = DropoutSite(
                path, kind, p, False,
                f"gated by self.training, which also switches other behaviour (line {lines});"
                " switching it on would change more than dropout", name, call.line)
            if not depth_off and path not in found.ambiguous:
                found.ambiguous.append(path)
        elif call.gating == "on":
            site = DropoutSite(path, kind, p, False, "hard-coded on (training=True or the "
                               "default): always active, also in eval", name, call.line)
        else:
            site = DropoutSite(path, kind, p, False,
                               "gated by an expression other than self.training", name,
                               call.line)
        found.sites.append(site)
    if switch and path not in found.switch_on:
        found.switch_on.append(path)


def find_dropout(model: nn.Module, *, stochastic_depth: bool = False) -> Discovery:
    """List every dropout site of ``model`` and the module flags that control them.

    Reads modules and source code only; runs nothing and changes nothing. Stochastic depth is
    always listed, and switched only with ``stochastic_depth=True``.
    """
    model = check_model(model)
    found = Discovery(stochastic_depth=bool(stochastic_depth))
    for path, module in model.named_modules():
        site = _module_site(path, module, found.stochastic_depth)
        if site is not None:
            found.sites.append(site)
            if site.controllable:
                found.switch_on.append(path)
            if module_family(module) != "owner":
                continue
        elif isinstance(module, FAST_PATH_OWNERS):
            found.switch_on.append(path)
        if not is_torch_class(type(module)):
            _code_sites(path, module, found)
    return found


class _Calls(CallTracker):
    """Every torch call of a pass as (path, name, non-tensor arguments), dropout apart."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.ops: list[tuple[Any, ...]] = []
        self.drops: list[tuple[str, float]] = []

    def on_call(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any,
                path: str) -> None:
        seen = dropout_call(func, args, kwargs)
        if seen is not None:
            f, rate = seen
            if rate > 0:
                self.drops.append((path, rate))
            if f.family == "dropout":
                return  # active or not, a dropout call changes nothing but dropout
            args = tuple(a for i, a in enumerate(args) if i != f.p_index)
            kwargs = {k: v for k, v in kwargs.items() if k != f.p_kw}
        op = func_name(func)
        if op in RANDOM_OPS:
            self.ops.append((path, op, "random"))
            return
        self.ops.append((path, op, _plain(args), _plain(tuple(kwargs.items()))))


def _plain(values: Any) -> tuple[Any, ...]:
    """The non-tensor parts of call arguments (what decides behaviour besides data)."""
    out: list[Any] = []
    for v in values:
        if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str):
            out.append((v[0], _plain((v[1],))))
        elif isinstance(v, (bool, int, float, str, type(None))):
            out.append(v)
        elif isinstance(v, (list, tuple)):
            out.append(_plain(v))
        else:
            out.append(type(v).__name__)
    return tuple(out)


def _run_calls(model: nn.Module, on: set[str], run: Callable[[nn.Module], Any]) -> _Calls:
    m = set_flags(shadow(model), on)
    with _Calls(m) as calls:
        run(m)
    return calls


def resolve(model: nn.Module, found: Discovery, run: Callable[[nn.Module], Any]) -> Discovery:
    """Decide the ambiguous flags of ``found`` by running the model (``run(m)`` is one forward
    of a configured copy ``m``); returns the updated discovery (``found`` is not changed)."""
    if not found.ambiguous:
        return found
    base = set(found.switch_on)
    ref = _run_calls(model, base, run)
    sites, switch_on = list(found.sites), list(found.switch_on)
    modules = dict(model.named_modules())
    for path in found.ambiguous:
        got = _run_calls(model, base | {path}, run)
        new = [d for d in got.drops if d not in ref.drops]
        name = type(modules[path]).__name__
        if got.ops == ref.ops and new:
            switch_on.append(path)
            rate = max(r for _, r in new)
            why = ("checked at run time: switching this module's training flag changes "
                   "nothing but dropout")
            known = [i for i, s in enumerate(sites) if s.path == path]
            for i in known:
                sites[i] = replace(sites[i], controllable=True, reason=why,
                                   p=sites[i].p if sites[i].p is not None else rate)
            if not known:
                sites.append(DropoutSite(path, "functional", rate, True, why, name))
            if path in found.unchecked:
                found = replace(found, unchecked=[u for u in found.unchecked if u != path])
        elif got.ops != ref.ops:
            diff = next((b for a, b in zip(ref.ops, got.ops, strict=False) if a != b),
                        got.ops[len(ref.ops)] if len(got.ops) > len(ref.ops) else None)
            what = f"{diff[1]} in {diff[0] or '<root>'}" if diff else "the calls made"
            why = (f"checked at run time: its training flag also changes {what}, so switching "
                   "it would change more than dropout")
            sites = [replace(s, reason=why) if s.path == path and not s.controllable else s
                     for s in sites]
    return replace(found, sites=sites, switch_on=switch_on, ambiguous=[])


@dataclass(frozen=True)
class Reconciliation:
    """What fired in a real pass against what discovery reported.

    Attributes:
        fired: path -> (kind, rate) of every dropout that dropped something.
        silent: switched dropout sites that did not drop anything (never called, or p=0 at run
            time: e.g. an ``nn.Dropout`` child kept only to hold a rate).
        unreported: paths where dropout fired that are not switched sites (always-on dropout,
            or dropout under a flag dropkit did not set).
        random: paths where random ops ran outside any known dropout (unknown stochasticity).
    """

    fired: dict[str, tuple[str, float]]
    silent: tuple[str, ...]
    unreported: tuple[str, ...]
    random: dict[str, tuple[str, ...]]

    @property
    def any_fired(self) -> bool:
        return bool(self.fired)


def reconcile(found: Discovery, firing: Firing) -> Reconciliation:
    switched = set(found.switch_on)
    live = {s.path for s in found.sites if s.controllable and s.path in switched
            and (s.p is None or s.p > 0)}
    silent = tuple(sorted(p for p in live if p not in firing.fired))
    unreported = tuple(sorted(p for p in firing.fired if p not in switched))
    # name what fired as the site it belongs to (eager attention drops with F.dropout)
    kinds = {s.path: s.kind for s in found.sites if s.controllable}
    fired = {p: (kinds.get(p, kind), rate) for p, (kind, rate) in firing.fired.items()}
    return Reconciliation(fired, silent, unreported,
                          {k: tuple(sorted(v)) for k, v in firing.random.items()})


def check_firing(model: nn.Module, found: Discovery,
                 run: Callable[[nn.Module], Any]) -> tuple[Reconciliation, Any]:
    """Run one pass of a copy of ``model`` configured as ``found`` says and reconcile."""
    m = set_flags(shadow(model), set(found.switch_on))
    firing, out = trace_firing(m, lambda: run(m))
    return reconcile(found, firing), out


def require_fired(found: Discovery, firing: Reconciliation | None = None) -> None:
    """Refuse a model whose switched dropout does not fire: its samples would not vary.

    Without ``firing`` (no pass run) the static report decides: some switched site with a
    rate that is not 0.
    """
    if firing is None:
        if found.live:
            return
        firing = Reconciliation({}, (), (), {})
    if firing.any_fired:
        return
    depth = [s for s in found.sites if s.kind == "stochastic_depth" and (s.p or 0) > 0]
    if depth and not found.stochastic_depth:
        detail = (f"only stochastic depth ({len(depth)} site(s), e.g. {depth[0].path}), which "
                  "is left off by default; pass stochastic_depth=True to sample over it")
    elif firing.silent:
        detail = ("dropout that is switched on but never drops anything in the forward pass "
                  f"({', '.join(firing.silent[:3])}): samples would not vary")
    elif found.uncontrollable:
        detail = "only dropout it cannot switch: " + "; ".join(
            f"{s.path or '<root>'}: {s.reason}" for s in found.uncontrollable[:3])
    elif found.controllable:
        detail = "only dropout with p=0"
    else:
        detail = "no dropout at all"
    raise NoDropoutError(
        expected("model", "a model with dropout that fires when switched on (a dropout module, "
                 "F.dropout(..., training=self.training), attention dropout gated by the "
                 "module's flag)", detail)
        + " MC dropout needs dropout that was active in training; run `dropkit lint` to see "
        "where dropout is.")
