"""How many samples one forward pass should carry (1 = a loop, more = stacked rows).

Unseeded ``"auto"`` *measures* a few choices (the rule's, then halves and doubles of it, up to
64) and keeps the fastest: on
a CPU large stacked passes are often slower than small ones (activations above the allocator's
mmap threshold are page-faulted per op), on a GPU they are usually faster. Seeded ``"auto"``
uses `rule` instead, because a timed choice changes how masks map to samples and would make the
samples of one seed depend on the machine's load.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dropkit.inspection.borrow import forked_rng
from dropkit.mc.inputs import ModelInputs

MAX_PASS_SAMPLES = 64
# On a CPU an activation larger than glibc's largest mmap threshold (32 MiB on 64-bit) is
# mapped and unmapped, and page-faulted, on every op; and well below that, stacking stops paying:
# it amortises per-op overhead, which large ops no longer have, while larger working sets leave
# the caches. Measured per sample (benchmarks/samples_per_pass.py, 2 threads, seeded, medians of
# 3 interleaved rounds): BERT-base shapes with 1.5 and 3 MiB per sample took 0.66-0.90x the
# loop's time at 2-8 samples per pass; a BN CNN with 6.1 MiB 0.95x at 2, 1.11x at 4 and 1.55x
# at 8; BERT-base and GPT-2-small with 12 MiB (batch 8 x 128) were slower at 2 than at 1 in
# benchmarks/hf_speed.py (40.4 s vs 37.4 s and 43.7 s vs 42.0 s for S = 20). Hence 16 MiB.
CPU_ACTIVATION_BUDGET = 16 * 2**20


# A timed choice replaces the rule's only when it is this much faster per sample: one timing
# on a CPU moves by more than 5% between runs (BERT-base, batch 8 x 128, 2 threads: 1 and 2
# samples per pass timed 1762 and 2253 ms/sample in one run, 1848 and 1771 in the next).
CLEAR_GAIN = 0.1


def cap(x: ModelInputs, samples: int, max_batch: int | None) -> int:
    k = min(samples, MAX_PASS_SAMPLES)
    if max_batch is not None:
        k = min(k, max(1, max_batch // x.b))
    return k


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], Any], device: torch.device) -> float:
    best = float("inf")
    for _ in range(2):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def _up(k: int, top: int) -> int | None:
    """The next larger choice after ``k``: twice it, or ``top`` last; None past ``top``."""
    if k * 2 <= top:
        return k * 2
    return top if k < top else None


def measure(model: nn.Module, x: ModelInputs, samples: int, max_batch: int | None,
            draw: Callable[[int, int], Callable[[], Any]], start: int = 1) -> tuple[int, str]:
    """Samples per pass with the lowest time per sample; ``draw(k, n)`` returns a function
    drawing ``n`` samples ``k`` per pass (run under a forked RNG: draws nothing).

    Timing starts at ``start`` (the planner passes `rule`'s choice, so a timed call is never
    left with a choice the rule would beat because the budget ran out below it), then tries
    halves of it and doubles of it, each direction stopping at a choice 30% slower than the best.
    Another choice replaces ``start`` only when it is `CLEAR_GAIN` (10%) faster per sample.
    Timing costs passes: it stops before the samples it has spent on timing (a warm-up and two
    timed draws per choice) would exceed ``samples``, so a call never spends more on choosing
    than on sampling (on a BERT-base batch, timing every choice up to 20 samples per pass cost
    more than the 20 samples themselves); the first choice is always timed.
    """
    top = cap(x, samples, max_batch)
    timings: dict[int, float] = {}
    spent = 0

    def trial(k: int) -> bool:
        """Time ``k``; True while it is within 30% of the best so far."""
        nonlocal spent
        draw(k, 1)()  # warm-up (and the prefix)
        timings[k] = _time(draw(k, k), x.device) / k
        spent += 2 * k + 1
        return timings[k] <= 1.3 * min(timings.values())

    with forked_rng(model, 0, x.device):
        trial(max(1, min(start, top)))
        first = next(iter(timings))
        k: int | None = first // 2
        while k and spent + 2 * k + 1 <= samples and trial(k):
            k //= 2
        k = _up(first, top)
        while k is not None and spent + 2 * k + 1 <= samples and trial(k):
            k = _up(k, top)
    best = min(timings, key=timings.__getitem__)
    if timings[best] > (1 - CLEAR_GAIN) * timings[first]:
        best = first  # not clearly faster than the rule's choice: timing noise, keep the rule
    told = ", ".join(f"{k}: {t * 1e3:.2f}" for k, t in timings.items())
    return best, (f"{best} sample(s) per pass measured fastest on {x.device.type} "
                  f"(ms/sample {told})")


def largest_activation(model: nn.Module, x: ModelInputs) -> int:
    """Bytes of the largest output of any leaf module in one pass over ``x``.

    Measured on the first row and scaled by B, so the probe never passes more rows than
    ``max_batch`` allows.
    """
    one = x.rows(0, 1)
    sizes = [0]

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                sizes.append(t.numel() * t.element_size())

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with forked_rng(model, 0, x.device):
            one.call(model)
    finally:
        for h in handles:
            h.remove()
    return max(sizes) * x.b


def rule(model: nn.Module, x: ModelInputs, samples: int, max_batch: int | None
         ) -> tuple[int, str]:
    """Samples per pass from a fixed rule (no timing), so seeded samples never depend on it.

    GPU: as many as ``max_batch`` allows. CPU: as many as keep the largest activation of a pass
    under `CPU_ACTIVATION_BUDGET` (16 MiB), at most 64.
    """
    top = cap(x, samples, max_batch)
    if x.device.type == "cuda":
        return top, f"{top} sample(s) per pass (GPU: as many as max_batch allows)"
    per_sample = max(1, largest_activation(model, x))
    k = max(1, min(top, CPU_ACTIVATION_BUDGET // per_sample))
    return k, (f"{k} sample(s) per pass by rule: the largest activation of one sample's pass is "
               f"{per_sample / 2**20:.2f} MiB, kept under {CPU_ACTIVATION_BUDGET // 2**20} MiB per "
               "pass on CPU (seeded calls use this rule instead of timing, so their samples are "
               "reproducible anywhere)")
