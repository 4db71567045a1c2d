"""Plan once: which flags make a model stochastic, whether that is what fires, and how to sample.

A `Plan` is built for a model, a kind of input (structure, shapes, dtypes), an output selector
and the sampling options, and kept until the model changes. Building one:

1. discovers the dropout (`dropkit.inspection.discover`), decides ambiguous flags by running
   the model, and reconciles the report with the dropout that actually fired in a real pass:
   a model whose switched dropout never fires is refused (its samples would not vary);
2. picks the strategy: ``"cached"`` (its prefix run once by a torch.fx graph, else by hooks)
   when the model has deterministic work before its first stochastic op *and* the cached
   samples equal the stacked ones under one seed; otherwise ``"loop"`` or ``"stacked"``;
3. picks how many samples a pass carries (`dropkit.mc.chunking`).

Plans are cached per model (weakly) and checked against the model's fingerprint on every call
(`dropkit.inspection.shadow.fingerprint`): a changed rate, a replaced submodule or patched code
rebuilds them. The plans of the last `KEPT_STATES` fingerprints are kept, so a model changed and
changed back (a hook added for one call, then removed) finds its plans again. `plans(model)`
lists the current state's plans, `clear_plans(model)` forgets all of them.

Sampling never switches the user's model: each thread samples from its own configured copy
(`shadow`), which shares every parameter and buffer. Building a plan for a model is serialised
by a per-model lock; drawing samples is not.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dropkit._log import get_logger
from dropkit.errors import DropkitError, DropkitValueError, expected
from dropkit.inspection.borrow import forked_rng
from dropkit.inspection.discover import (
    Discovery,
    DropoutSite,
    Reconciliation,
    check_firing,
    find_dropout,
    require_fired,
    resolve,
)
from dropkit.inspection.shadow import fingerprint, set_flags, shadow
from dropkit.mc import cached_graph as G
from dropkit.mc import chunking
from dropkit.mc.cached_hooks import SkipAcrossSplit
from dropkit.mc.inputs import ModelInputs
from dropkit.mc.outputs import Output, Selector, select_output
from dropkit.mc.sampler import Sampler
from dropkit.mc.uncached import stacked_samples


@dataclass(frozen=True)
class Plan:
    """How samples of a model are drawn for one kind of input, and why.

    Attributes:
        strategy: ``"loop"``, ``"stacked"`` or ``"cached"`` (what `Prediction.strategy` shows).
        prefix: how the cached strategy runs the deterministic prefix once: ``"graph"``
            (torch.fx) or ``"hooks"``; None for ``"loop"`` and ``"stacked"``.
        samples_per_pass: samples per forward pass (None: as many as ``max_batch`` allows).
        reason: why, in words (`Prediction.strategy_reason`).
        switch_on: module paths whose ``training`` flag is on while sampling.
        sites: every dropout site found (stochastic depth included).
        firing: what fired in the checking pass against what was reported.
        stochastic_depth: whether stochastic depth is switched on.
        row_bytes: bytes of the selected output per input row and sample (for memory checks).
        row_shape: the shape of one row of the selected output (a single tensor), else ().
        key: the inputs' signature and options this plan is for.
    """

    strategy: str
    prefix: str | None
    samples_per_pass: int | None
    reason: str
    switch_on: tuple[str, ...]
    sites: tuple[DropoutSite, ...]
    firing: Reconciliation
    stochastic_depth: bool
    row_bytes: int
    row_shape: tuple[int, ...]
    key: tuple[Any, ...] = field(repr=False)

    @property
    def mechanism(self) -> str:
        """Deprecated: ``prefix`` for the cached strategy, else ``strategy``."""
        warnings.warn("Plan.mechanism is deprecated: read Plan.strategy and Plan.prefix",
                      DeprecationWarning, stacklevel=2)
        return self.prefix or self.strategy

    @property
    def pass_samples(self) -> int | None:
        """Deprecated name of ``samples_per_pass``."""
        warnings.warn("Plan.pass_samples is deprecated: read Plan.samples_per_pass",
                      DeprecationWarning, stacklevel=2)
        return self.samples_per_pass

    def __str__(self) -> str:
        how = f"{self.strategy} ({self.prefix})" if self.prefix else self.strategy
        lines = [f"plan: {how}, {self.reason}"]
        fired = self.firing.fired
        for s in self.sites:
            state = ("on, fired" if s.path in fired else "on, DID NOT FIRE") \
                if s.path in self.switch_on and s.controllable else "left off"
            lines.append(f"  {s.path or '<root>'}: {s.kind} p={s.p} [{state}] {s.reason}")
        lines += [f"  {p or '<root>'}: dropout fired but is not a switched site (always on?)"
                  for p in self.firing.unreported]
        lines += [f"  {p or '<root>'}: random ops {', '.join(ops)} outside known dropout"
                  for p, ops in self.firing.random.items()]
        return "\n".join(lines)


class _Entry:
    """Everything cached for one state of a model, valid while its fingerprint holds.

    A fingerprint is made of object ids, and an id is only unique while its object lives: the
    entry therefore holds a shadow of the model (which references every attribute value,
    parameter and buffer of that state) and weak references to its modules, so that a later
    state can match this fingerprint only by being this state (see `alive`).
    """

    def __init__(self, fp: tuple[Any, ...], model: nn.Module) -> None:
        self.fp = fp
        self.anchor = shadow(model)
        self.modules = [weakref.ref(m) for m in model.modules()]
        self.lock = threading.RLock()
        self.discoveries: dict[tuple[Any, ...], tuple[Discovery, Reconciliation, Any]] = {}
        self.graphs: dict[tuple[str, ...], G.GraphPlan | str] = {}
        self.prefixes: dict[tuple[Any, ...], tuple[str | None, str]] = {}
        self.plans: dict[tuple[Any, ...], Plan] = {}

    def alive(self) -> bool:
        """Whether every module of this state still exists (else its ids may be reused)."""
        return all(r() is not None for r in self.modules)


#: States (fingerprints) whose plans are kept per model. Four covers a hook added and removed
#: around calls (profilers, feature extraction, the firing trace in benchmarks/hf_speed.py): on
#: a BERT-base batch an unseeded call that plans took 95.6 s, the next one 42.4 s. Older states
#: are forgotten first. A kept state holds its tensors: a parameter the user replaced (not
#: updated in place) is freed when its state is forgotten, or at once by `clear_plans`.
KEPT_STATES = 4

_ENTRIES: weakref.WeakKeyDictionary[nn.Module, OrderedDict[tuple[Any, ...], _Entry]] = \
    weakref.WeakKeyDictionary()
_ENTRIES_LOCK = threading.Lock()
_SHADOWS = threading.local()  # per thread: model -> (fingerprint, switch_on, configured copy)
_Shadows = weakref.WeakKeyDictionary[nn.Module, tuple[tuple[Any, ...], tuple[str, ...], nn.Module]]


def _entry(model: nn.Module) -> _Entry:
    fp = fingerprint(model)
    with _ENTRIES_LOCK:
        kept = _ENTRIES.get(model)
        if kept is None:
            kept = _ENTRIES[model] = OrderedDict()
        entry = kept.get(fp)
        if entry is None or not entry.alive():
            entry = kept[fp] = _Entry(fp, model)
            while len(kept) > KEPT_STATES:
                kept.popitem(last=False)
        kept.move_to_end(fp)
    return entry


def plans(model: nn.Module) -> list[Plan]:
    """The plans cached for ``model`` in its current state (empty after a change to the model
    that no kept state matches, or after `clear_plans`)."""
    kept = _ENTRIES.get(model)
    entry = None if kept is None else kept.get(fingerprint(model))
    if entry is None or not entry.alive():
        return []
    return list(entry.plans.values())


def clear_plans(model: nn.Module | None = None) -> None:
    """Forget the cached plans of ``model`` (of every model when None)."""
    with _ENTRIES_LOCK:
        if model is None:
            _ENTRIES.clear()
        else:
            _ENTRIES.pop(model, None)
    cache = getattr(_SHADOWS, "copies", None)
    if cache is not None:
        if model is None:
            cache.clear()
        else:
            cache.pop(model, None)


def configured(model: nn.Module, switch_on: tuple[str, ...], fp: tuple[Any, ...]) -> nn.Module:
    """This thread's copy of ``model`` with exactly ``switch_on`` in training mode."""
    cache: _Shadows | None = getattr(_SHADOWS, "copies", None)
    if cache is None:
        cache = _SHADOWS.copies = weakref.WeakKeyDictionary()
    hit = cache.get(model)
    if hit is not None and hit[0] == fp and hit[1] == switch_on:
        return hit[2]
    copy = set_flags(shadow(model), set(switch_on))
    cache[model] = (fp, switch_on, copy)
    return copy


def _selector_key(output: Selector) -> Any:
    return ("callable", id(output)) if callable(output) and not isinstance(output, (int, str)) \
        else output


def _forward_error(err: Exception, x: ModelInputs) -> DropkitValueError:
    first = (str(err).strip().splitlines() or [""])[0][:300]
    return DropkitValueError(expected(
        "x", "inputs the model's forward accepts",
        f"{x.describe()}, on which the forward raised {type(err).__name__}: {first}"))


def _probe_rows(x: ModelInputs, max_batch: int | None) -> ModelInputs:
    return x.rows(0, min(x.b, 2, max_batch or 2))


def discover(model: nn.Module, entry: _Entry, x: ModelInputs, *, stochastic_depth: bool,
             max_batch: int | None) -> tuple[Discovery, Reconciliation, Any]:
    """Discovery decided and checked at run time on (the first rows of) ``x``; also returns
    the raw output of the checking pass."""
    key = (stochastic_depth, x.signature())
    if key in entry.discoveries:
        return entry.discoveries[key]
    probe = _probe_rows(x, max_batch)

    def run(m: nn.Module) -> Any:
        with torch.inference_mode():
            return probe.call(m)

    found = find_dropout(model, stochastic_depth=stochastic_depth)
    try:
        with forked_rng(model, 0, x.device):
            found = resolve(model, found, run)
            firing, out = check_firing(model, found, run)
    except DropkitError:
        raise
    except Exception as err:
        raise _forward_error(err, x) from err
    require_fired(found, firing)
    entry.discoveries[key] = (found, firing, out)
    return found, firing, out


def _row_size(out: Any, output: Selector, rows: int) -> tuple[int, tuple[int, ...]]:
    """Bytes per input row of the selected output, and one row's shape (single tensor)."""
    sel = select_output(out, output)
    parts = sel if isinstance(sel, tuple) else (sel,)
    size = max(1, sum(t.numel() * t.element_size() for t in parts) // max(rows, 1))
    return size, (tuple(sel.shape[1:]) if isinstance(sel, torch.Tensor) else ())


def _close(a: Output, b: Output) -> bool:
    pa = a if isinstance(a, tuple) else (a,)
    pb = b if isinstance(b, tuple) else (b,)
    return len(pa) == len(pb) and all(
        u.shape == v.shape and torch.allclose(u.double(), v.double(), rtol=1e-4, atol=1e-5)
        for u, v in zip(pa, pb, strict=True))


_log = get_logger(__name__)

#: Rows the cached-vs-stacked check runs on (see `_verify`).
VERIFY_ROWS = 64


def _verify(m: nn.Module, x: ModelInputs, sampler_args: dict[str, Any],
            max_batch: int | None, output: Selector) -> str | None:
    """Cached vs stacked samples under one seed (S=2, plain masks): None if equal.

    The check runs on the first `VERIFY_ROWS` rows (with ``max_batch``, at most
    ``max_batch // 2``, at least one, so that it too never passes more rows than allowed): two
    rows already show a model that mixes rows across the split, and on a 1,024-row pool chunk
    the full-size check cost more than two plain calls (active-learning benchmark, issue 15).
    A dropkit error (a wrong selector, say) is the user's to see, not a reason to fall back.
    """
    rows = VERIFY_ROWS if max_batch is None else max(1, min(VERIFY_ROWS, max_batch // 2))
    x = x.rows(0, min(x.b, rows))
    sampler = Sampler(m, x, "cached", 2, max_batch=max_batch, output=output,
                      fast_masks=False, **sampler_args)
    try:
        with forked_rng(m, 0, x.device):
            ref = stacked_samples(m, x, 2, max_batch=max_batch, output=output)
        with forked_rng(m, 0, x.device):
            if sampler.row_step < x.b or (max_batch is not None and 2 * x.b > max_batch):
                got = sampler.draw(2)  # one row or one sample per pass, as stacked does
            else:
                got = sampler.cached_pass(sampler.run_prefix(x), x, 2, check=True)
    except DropkitError:
        raise
    except SkipAcrossSplit as err:
        return str(err)
    except Exception as err:  # a failing cached run means "not applicable"
        return f"the cached run failed ({type(err).__name__}: {str(err).splitlines()[0]})"
    if not _close(ref, got):
        return ("the cached samples differ from the stacked ones under one seed (the model "
                "likely uses batch sizes or values across the split)")
    return None


def _graph(entry: _Entry, m: nn.Module, switch_on: tuple[str, ...]) -> G.GraphPlan | str:
    if switch_on not in entry.graphs:
        try:
            entry.graphs[switch_on] = G.build_plan(m, list(switch_on))
        except G.GraphUnsupported as err:
            entry.graphs[switch_on] = str(err)
    return entry.graphs[switch_on]


def _prefix(entry: _Entry, m: nn.Module, x: ModelInputs, switch_on: tuple[str, ...], *,
               output: Selector, split_at: str | None, max_batch: int | None
               ) -> tuple[str | None, str, G.GraphPlan | None]:
    """The way of running the prefix once that applies ("graph", "hooks" or None) and why."""
    key = (x.signature(), _selector_key(output), split_at, max_batch, switch_on)
    graph = _graph(entry, m, switch_on) if split_at is None else "split_at given"
    if key in entry.prefixes:
        mech, known = entry.prefixes[key]
        return mech, known, graph if isinstance(graph, G.GraphPlan) else None
    why: list[str] = []
    if isinstance(graph, str):
        if split_at is None:
            why.append(f"graph: {graph}")
    elif not graph.has_prefix:
        why.append("graph: the first op is already stochastic, there is no prefix to cache")
    else:
        bad = _verify(m, x, {"prefix": "graph", "graph": graph, "switch_on": switch_on},
                      max_batch, output)
        if bad is None:
            entry.prefixes[key] = ("graph", f"torch.fx graph: {graph.prefix_ops} "
                                     f"deterministic op(s) before the first stochastic op "
                                     f"({graph.first_stochastic}) run once")
            return "graph", entry.prefixes[key][1], graph
        why.append(f"graph: {bad}")
    bad = _verify(m, x, {"prefix": "hooks", "split_at": split_at, "switch_on": switch_on},
                  max_batch, output)
    if bad is None:
        where = split_at or "the first stochastic module"
        entry.prefixes[key] = ("hooks", "; ".join([f"hooks: the prefix before {where} runs "
                                                     "once"] + [f"not {w}" for w in why]))
    else:
        why.append(f"hooks: {bad}")
        entry.prefixes[key] = (None, "; ".join(why))
    mech, reason = entry.prefixes[key]
    return mech, reason, None


def plan(model: nn.Module, x: ModelInputs, samples: int, *, strategy: str,
         max_batch: int | None, output: Selector, split_at: str | None, seeded: bool,
         stochastic_depth: bool = False) -> tuple[Plan, Sampler]:
    """The plan for this model and batch (built once, then cached) and a sampler for ``x``."""
    entry = _entry(model)
    key = (x.signature(), chunking.cap(x, samples, max_batch), max_batch, strategy, split_at,
           seeded, stochastic_depth, _selector_key(output))
    with entry.lock:
        found, firing, out = discover(model, entry, x, stochastic_depth=stochastic_depth,
                                      max_batch=max_batch)
        switch_on = tuple(found.switch_on)
        m = configured(model, switch_on, entry.fp)
        graph: G.GraphPlan | None = None
        if key in entry.plans:
            p = entry.plans[key]
            if p.prefix == "graph":
                g = _graph(entry, m, switch_on)
                graph = g if isinstance(g, G.GraphPlan) else None
        else:
            row = _row_size(out, output, _probe_rows(x, max_batch).b)
            p, graph = _build(entry, m, x, samples, key, found, firing, row,
                              strategy=strategy, max_batch=max_batch, output=output,
                              split_at=split_at, seeded=seeded)
            entry.plans[key] = p
            _log.debug("planned %s for %s: strategy %s, prefix %s, %s sample(s) per pass, %d "
                       "site(s) switched; %s", "a seeded call" if seeded else "a call",
                       type(m).__name__,
                       p.strategy, p.prefix, p.samples_per_pass, len(switch_on), p.reason)
    sampler = Sampler(m, x, p.strategy, p.samples_per_pass, prefix=p.prefix,
                      max_batch=max_batch, output=output,
                      split_at=split_at, switch_on=switch_on, graph=graph)
    return p, sampler


def _build(entry: _Entry, m: nn.Module, x: ModelInputs, samples: int, key: tuple[Any, ...],
           found: Discovery, firing: Reconciliation, row: tuple[int, tuple[int, ...]], *,
           strategy: str,
           max_batch: int | None,
           output: Selector, split_at: str | None, seeded: bool
           ) -> tuple[Plan, G.GraphPlan | None]:
    switch_on = tuple(found.switch_on)

    def make(strategy_: str, prefix: str | None, k: int | None, reason: str) -> Plan:
        return Plan(strategy_, prefix, k, reason, switch_on, tuple(found.sites), firing,
                    found.stochastic_depth, row[0], row[1], key)

    if strategy in ("loop", "stacked"):
        return make(strategy, None, None, "chosen by the caller"), None
    mech, why, graph = _prefix(entry, m, x, switch_on, output=output, split_at=split_at,
                                  max_batch=max_batch)
    if strategy == "cached":
        if mech is None:
            raise DropkitValueError(expected(
                "strategy", "'cached' only for a model whose deterministic prefix can be run "
                "once (use 'auto', 'stacked' or 'loop')", f"a model where it cannot: {why}"))
        return make("cached", mech, None, f"chosen by the caller; {why}"), graph
    if seeded:
        k, timing = chunking.rule(m, x, samples, max_batch)
    else:
        def draw(k: int, n: int) -> Any:
            how = "cached" if mech else ("loop" if k == 1 else "stacked")
            s = Sampler(m, x, how, k, prefix=mech, max_batch=max_batch, output=output,
                        split_at=split_at, switch_on=switch_on, graph=graph)
            s.draw(1)
            return lambda: s.draw(n)
        start, _ = chunking.rule(m, x, samples, max_batch)
        k, timing = chunking.measure(m, x, samples, max_batch, draw, start=start)
    if mech is not None:
        return make("cached", mech, k, f"{why}; {timing}"), graph
    uncached = "loop" if k == 1 else "stacked"
    return make(uncached, None, k, f"no cached prefix ({why}); {timing}"), None
