"""Resolve a sampling strategy for one batch and draw chunks of samples with it.

`session` enters `mc_mode`, ``inference_mode`` and the seeded RNG once, resolves ``"auto"`` and
yields a `Sampler` whose ``draw(c)`` returns ``c`` more samples ``(c, B, ...)``. `sample`,
streaming statistics and ``samples="auto"`` are all built on it.

``"auto"``: use the cached prefix when the model has deterministic work before its first
stochastic op and the cached plan reproduces the stacked samples under one seed (checked once
per model and input shape); otherwise the plain model. Then *measure* how many samples one pass
should carry (1 = a loop, more = stacked rows): on a CPU large stacked passes are often slower
than small ones (activations above the allocator's mmap threshold are page-faulted per op), on
a GPU they are usually faster. Checks and timings run under a forked RNG and draw nothing from
the caller's generator; their decision is remembered per model and input shape, so repeated
calls with one seed give identical samples.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dropkit.errors import DropkitValueError, expected
from dropkit.mc import cached_graph as G
from dropkit.mc.cached_hooks import HookPlan, SkipAcrossSplit
from dropkit.mc.discover import find_dropout
from dropkit.mc.mode import mc_mode
from dropkit.mc.outputs import Output, Selector, check_output_finite, select_output
from dropkit.mc.sampling import (
    Inputs,
    batch_size,
    device_of,
    loop_samples,
    map_inputs,
    seeded,
    stack_outputs,
    stacked_samples,
)

# model -> {"graph": GraphPlan | str (why not), "decisions": {key: Decision}}
_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[str, Any]] = weakref.WeakKeyDictionary()
_MAX_PASS_SAMPLES = 64


@dataclass(frozen=True)
class Decision:
    strategy: str  # "loop", "stacked" or "cached"
    mechanism: str  # "plain", "graph" or "hooks"
    pass_samples: int | None  # samples per pass (None: as many as max_batch allows)
    reason: str


def _signature(x: Inputs) -> tuple[Any, ...]:
    parts = x if isinstance(x, tuple) else (x,)
    return tuple((tuple(t.shape), t.dtype, str(t.device)) for t in parts)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _quiet_rng(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Fork torch's RNG and every module generator, so checks and timings draw nothing."""
    gens = [g for m in model.modules()
            if isinstance(g := getattr(m, "generator", None), torch.Generator)]
    states = [g.get_state() for g in gens]
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices, device_type=device.type):
            torch.manual_seed(0)
            yield
    finally:
        for g, s in zip(gens, states, strict=True):
            g.set_state(s)


def _as_samples(out: Output, copies: int, b: int) -> Output:
    """``(copies*B, ...)`` -> ``(copies, B, ...)``, tuple-aware."""
    if isinstance(out, tuple):
        return tuple(t.reshape(copies, b, *t.shape[1:]) for t in out)
    return out.reshape(copies, b, *out.shape[1:])


def _close(a: Output, b: Output) -> bool:
    pa = a if isinstance(a, tuple) else (a,)
    pb = b if isinstance(b, tuple) else (b,)
    return len(pa) == len(pb) and all(
        u.shape == v.shape and torch.allclose(u.double(), v.double(), rtol=1e-4, atol=1e-5)
        for u, v in zip(pa, pb, strict=True))


class Sampler:
    """Draws samples of one batch ``x`` with a resolved strategy (inside a `session`)."""

    def __init__(self, model: nn.Module, x: Inputs, decision: Decision, *,
                 max_batch: int | None, output: Selector, split_at: str | None,
                 fast_masks: bool = True) -> None:
        self.model, self.x, self.decision = model, x, decision
        self.max_batch, self.output, self.split_at = max_batch, output, split_at
        self.fast_masks = fast_masks
        self.b = batch_size(x)
        self.row_step = self.b if max_batch is None else min(self.b, max_batch)
        self._prefix: list[Any] = []  # per row chunk: graph cache or HookPlan

    @property
    def strategy(self) -> str:
        return self.decision.strategy

    @property
    def reason(self) -> str:
        return self.decision.reason

    def _per_pass(self, rows: int, c: int) -> int:
        k = c if self.decision.pass_samples is None else min(c, self.decision.pass_samples)
        if self.max_batch is not None:
            k = min(k, max(1, self.max_batch // rows))
        return max(1, k)

    def draw(self, c: int) -> Output:
        """``c`` more samples, ``(c, B, ...)``; no pass takes more than ``max_batch`` rows."""
        mech = self.decision.mechanism
        if mech == "plain":
            if self.decision.strategy == "loop":
                return loop_samples(self.model, self.x, c, max_batch=self.max_batch,
                                    output=self.output)
            rows = (self.decision.pass_samples or c) * self.b
            mb = rows if self.max_batch is None else min(rows, self.max_batch)
            return stacked_samples(self.model, self.x, c, max_batch=mb, output=self.output)
        parts = []
        for i, start in enumerate(range(0, self.b, self.row_step)):
            xs = map_inputs(self.x, lambda t, s=start: t[s:s + self.row_step])
            rows = batch_size(xs)
            if len(self._prefix) <= i:
                self._prefix.append(self._make_prefix(xs, rows))
            k, done, chunks = self._per_pass(rows, c), 0, []
            while done < c:
                n = min(k, c - done)
                chunks.append(self._pass(self._prefix[i], xs, n, rows))
                done += n
            parts.append(chunks[0] if len(chunks) == 1 else stack_outputs(chunks, stack=False))
        return parts[0] if len(parts) == 1 else stack_outputs(parts, dim=1, stack=False)

    def _make_prefix(self, xs: Inputs, rows: int) -> Any:
        if self.decision.mechanism == "graph":
            plan = _graph_plan(self.model)
            assert isinstance(plan, G.GraphPlan)
            return G.run_prefix(plan, xs if isinstance(xs, tuple) else (xs,))
        hp = HookPlan(self.model, self.split_at, find_dropout(self.model).switch_on)
        hp.capture(lambda: _raw(self.model, xs), rows)
        return hp

    def _pass(self, prefix: Any, xs: Inputs, n: int, rows: int, check: bool = False) -> Output:
        if self.decision.mechanism == "graph":
            plan = _graph_plan(self.model)
            assert isinstance(plan, G.GraphPlan)
            raw = G.run_suffix(plan, prefix, n, rows, fast_masks=self.fast_masks)
        else:
            raw = prefix.run(lambda: _raw(self.model, xs), n, rows, check=check)
        out = select_output(raw, self.output)
        check_output_finite(out)
        return _as_samples(out, n, rows)


def _raw(model: nn.Module, x: Inputs) -> Any:
    return model(*x) if isinstance(x, tuple) else model(x)


def _graph_plan(model: nn.Module) -> G.GraphPlan | str:
    entry = _CACHE.setdefault(model, {"decisions": {}})
    if "graph" not in entry:
        try:
            entry["graph"] = G.build_plan(model, find_dropout(model).switch_on)
        except G.GraphUnsupported as err:
            entry["graph"] = str(err)
    return entry["graph"]


def _verify(model: nn.Module, x: Inputs, mechanism: str, *, output: Selector,
            split_at: str | None, max_batch: int | None) -> str | None:
    """Cached vs stacked samples under one seed (S=2, dropkit masks off): None if equal.

    With ``max_batch`` the check runs on the first ``max_batch // 2`` rows (at least one), so
    that it too never passes more rows than allowed.
    """
    if max_batch is not None:
        rows = max(1, min(batch_size(x), max_batch // 2))
        x = map_inputs(x, lambda t: t[:rows])
    probe = Decision("cached", mechanism, 2, "check")
    sampler = Sampler(model, x, probe, max_batch=max_batch, output=output, split_at=split_at,
                      fast_masks=False)
    device = device_of(x)
    try:
        with _quiet_rng(model, device):
            ref = stacked_samples(model, x, 2, max_batch=max_batch, output=output)
        with _quiet_rng(model, device):
            if sampler.row_step < sampler.b or (max_batch is not None
                                                and 2 * sampler.b > max_batch):
                got = sampler.draw(2)  # one row or one sample per pass, as stacked does
            else:
                prefix = sampler._make_prefix(x, sampler.b)
                got = sampler._pass(prefix, x, 2, sampler.b, check=True)
    except SkipAcrossSplit as err:
        return str(err)
    except Exception as err:  # noqa: BLE001 - a failing cached run means "not applicable"
        return f"the cached run failed ({type(err).__name__}: {str(err).splitlines()[0]})"
    if not _close(ref, got):
        return ("the cached samples differ from the stacked ones under one seed (the model "
                "likely uses batch sizes or values across the split)")
    return None


def _mechanism(model: nn.Module, x: Inputs, *, output: Selector, split_at: str | None,
               max_batch: int | None, key: tuple[Any, ...]) -> tuple[str | None, str]:
    """Which cached mechanism applies to this model and input ("graph", "hooks" or None)."""
    entry = _CACHE.setdefault(model, {"decisions": {}})
    memo = entry.setdefault("mechanism", {})
    if key in memo:
        return memo[key]
    why = []
    if split_at is None:
        plan = _graph_plan(model)
        if isinstance(plan, str):
            why.append(f"graph: {plan}")
        elif not plan.has_prefix:
            why.append("graph: the first op is already stochastic, there is no prefix to cache")
        else:
            bad = _verify(model, x, "graph", output=output, split_at=None,
                          max_batch=max_batch)
            if bad is None:
                memo[key] = ("graph", f"torch.fx graph: {plan.prefix_ops} deterministic op(s) "
                             f"before the first stochastic op ({plan.first_stochastic}) run once")
                return memo[key]
            why.append(f"graph: {bad}")
    bad = _verify(model, x, "hooks", output=output, split_at=split_at, max_batch=max_batch)
    if bad is None:
        where = split_at or "the first stochastic module"
        memo[key] = ("hooks", "; ".join([f"hooks: the prefix before {where} runs once"]
                                        + [f"not {w}" for w in why]))
    else:
        why.append(f"hooks: {bad}")
        memo[key] = (None, "; ".join(why))
    return memo[key]


def _time(fn: Callable[[], Any], device: torch.device) -> float:
    best = float("inf")
    for _ in range(2):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def _measure(model: nn.Module, x: Inputs, mechanism: str, samples: int, *,
             max_batch: int | None, output: Selector, split_at: str | None) -> tuple[int, str]:
    """Samples per pass that gave the lowest time per sample (powers of two up to 64)."""
    b = batch_size(x)
    cap = min(samples, _MAX_PASS_SAMPLES)
    if max_batch is not None:
        cap = min(cap, max(1, max_batch // b))
    device = device_of(x)
    timings: dict[int, float] = {}
    k = 1
    with _quiet_rng(model, device):
        while k <= cap:
            strat = "cached" if mechanism != "plain" else ("loop" if k == 1 else "stacked")
            s = Sampler(model, x, Decision(strat, mechanism, k, "timing"), max_batch=max_batch,
                        output=output, split_at=split_at)
            s.draw(1)  # warm-up (and the prefix)
            timings[k] = _time(lambda s=s, k=k: s.draw(k), device) / k
            if timings[k] > 1.3 * min(timings.values()):
                break
            k = k * 2 if k * 2 <= cap or k == cap else cap
    best = min(timings, key=timings.__getitem__)
    told = ", ".join(f"{k}: {t * 1e3:.2f}" for k, t in timings.items())
    return best, f"{best} sample(s) per pass measured fastest on {device.type} (ms/sample {told})"


# On a CPU an activation larger than glibc's largest mmap threshold (32 MiB on 64-bit) is
# mapped and unmapped, and page-faulted, on every op: keep each activation of a pass below it.
_CPU_ACTIVATION_BUDGET = 32 * 2**20


def _largest_activation(model: nn.Module, x: Inputs) -> int:
    """Bytes of the largest output of any leaf module in one plain pass over ``x``.

    Measured on the first row and scaled by B, so the probe never passes more rows than
    ``max_batch`` allows.
    """
    b = batch_size(x)
    x = map_inputs(x, lambda t: t[:1])
    sizes = [0]

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                sizes.append(t.numel() * t.element_size())

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with _quiet_rng(model, device_of(x)):
            _raw(model, x)
    finally:
        for h in handles:
            h.remove()
    return max(sizes) * b


def _rule(model: nn.Module, x: Inputs, samples: int, *, max_batch: int | None) -> tuple[int, str]:
    """Samples per pass from a fixed rule (no timing), so seeded samples never depend on it.

    GPU: as many as ``max_batch`` allows. CPU: as many as keep the largest activation of a pass
    under 32 MiB (the allocator's mmap threshold), at most 64.
    """
    b = batch_size(x)
    cap = min(samples, _MAX_PASS_SAMPLES)
    if max_batch is not None:
        cap = min(cap, max(1, max_batch // b))
    if device_of(x).type == "cuda":
        return cap, f"{cap} sample(s) per pass (GPU: as many as max_batch allows)"
    per_sample = max(1, _largest_activation(model, x))
    k = max(1, min(cap, _CPU_ACTIVATION_BUDGET // per_sample))
    return k, (f"{k} sample(s) per pass by rule: the largest activation of one sample's pass is "
               f"{per_sample / 2**20:.2f} MiB, kept under 32 MiB per pass on CPU (seeded calls "
               "use this rule instead of timing, so their samples are reproducible anywhere)")


def decide(model: nn.Module, x: Inputs, samples: int, *, strategy: str, max_batch: int | None,
           output: Selector, split_at: str | None, seeded: bool = False) -> Decision:
    """Resolve the strategy for this model and batch (inside mc_mode).

    Unseeded ``"auto"`` times a few samples-per-pass and keeps the fastest; seeded ``"auto"``
    uses `_rule`, because a timed choice changes how masks map to samples and would make the
    samples of one seed depend on the machine's load.
    """
    if strategy in ("loop", "stacked"):
        return Decision(strategy, "plain", None, "chosen by the caller")
    entry = _CACHE.setdefault(model, {"decisions": {}})
    key = (_signature(x), min(samples, _MAX_PASS_SAMPLES), max_batch, strategy, split_at,
           tuple(find_dropout(model).switch_on), seeded)
    if key in entry["decisions"]:
        return entry["decisions"][key]
    mech, why = _mechanism(model, x, output=output, split_at=split_at, max_batch=max_batch,
                           key=key[0:1] + key[2:3] + key[4:6])
    if strategy == "cached":
        if mech is None:
            raise DropkitValueError(expected(
                "strategy", "'cached' only for a model whose deterministic prefix can be run "
                "once (use 'auto', 'stacked' or 'loop')", f"a model where it cannot: {why}"))
        decision = Decision("cached", mech, None, f"chosen by the caller; {why}")
    else:
        if seeded:
            k, timing = _rule(model, x, samples, max_batch=max_batch)
        else:
            k, timing = _measure(model, x, mech or "plain", samples, max_batch=max_batch,
                                 output=output, split_at=split_at)
        if mech is not None:
            decision = Decision("cached", mech, k, f"{why}; {timing}")
        else:
            decision = Decision("loop" if k == 1 else "stacked", "plain", k,
                                f"no cached prefix ({why}); {timing}")
    entry["decisions"][key] = decision
    return decision


@contextlib.contextmanager
def session(model: nn.Module, x: Inputs, samples: int, *, strategy: str,
            max_batch: int | None, output: Selector, generator: torch.Generator | None,
            split_at: str | None = None) -> Iterator[Sampler]:
    """mc_mode + inference_mode + seeded RNG around a `Sampler` for the batch ``x``."""
    with mc_mode(model), torch.inference_mode():
        decision = decide(model, x, samples, strategy=strategy, max_batch=max_batch,
                          output=output, split_at=split_at, seeded=generator is not None)
        sampler = Sampler(model, x, decision, max_batch=max_batch, output=output,
                          split_at=split_at)
        with seeded(generator, device_of(x)):
            yield sampler
