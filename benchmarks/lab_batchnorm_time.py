"""Where the batchnorm claim's time goes: one full-size seed, by part, in CPU seconds.

Not a test. Run from the repository root:

    PYTHONPATH=src:. python benchmarks/lab_batchnorm_time.py --seed 0

Times ``batchnorm.measure(SETTINGS, seed)`` (every BatchNorm net and every recipe net of one
seed) and ``batchnorm.shared`` (the configuration survey, cold), with the parts that
``measure`` calls wrapped by timers; then one training step of a width-32 and a width-256 net
split into forward, backward and the Adam step. CPU seconds of this process (``process_time``),
so other load on the machine counts less than in wall seconds (both are printed). Nothing
that the claim computes is changed.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from dropkit.lab import batchnorm as BN

CPU: dict[str, float] = defaultdict(float)
WALL: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)


def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kw: Any) -> Any:
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            CPU[name] += time.process_time() - c0
            WALL[name] += time.perf_counter() - w0
            CALLS[name] += 1
    return wrapper


def by_width(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(d: Any, kind: str, width: int, *rest: Any) -> Any:
        return timed(f"{name} width {width}", fn)(d, kind, width, *rest)
    return wrapper


def parts(seed: int) -> None:
    for name in ("train", "recalibrate_bn", "variance_shift", "_error", "load_digits"):
        setattr(BN, name, timed(name, getattr(BN, name)))
    BN._one = by_width("BatchNorm net", BN._one)  # type: ignore[method-assign]
    BN._recipe_one = by_width("recipe net", BN._recipe_one)  # type: ignore[method-assign]
    timed("measure (one seed)", BN.measure)(BN.SETTINGS, seed)
    timed("shared (the survey, cold)", BN.shared)(BN.SETTINGS, (seed,))
    for k in CPU:
        print(f"{k:28s} calls {CALLS[k]:4d}  cpu {CPU[k]:7.2f} s  wall {WALL[k]:7.2f} s")


def one_step(seed: int, steps: int = 300) -> None:
    d = BN.load_digits(seed=seed)
    x, y = d.flat_train, d.y_train
    for width in BN.SETTINGS.widths:
        torch.manual_seed(seed)
        model = BN.build("linear-drop-bn", x.shape[1], width, 10, 0.5, BN.SETTINGS.blocks)
        opt = torch.optim.Adam(model.train().parameters(), lr=BN.SETTINGS.lr)
        t = {"forward+loss": 0.0, "backward": 0.0, "Adam step": 0.0}
        for step in range(steps):
            idx = torch.arange(step * 64, step * 64 + 64) % len(x)
            opt.zero_grad(set_to_none=True)
            c0 = time.process_time()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            c1 = time.process_time()
            loss.backward()
            c2 = time.process_time()
            opt.step()
            c3 = time.process_time()
            for k, v in zip(t, (c1 - c0, c2 - c1, c3 - c2), strict=True):
                t[k] += v
        total = sum(t.values())
        print(f"width {width:3d} linear-drop-bn: {1000 * total / steps:.2f} ms CPU per step: "
              + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in t.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)  # as the lab runs
    one_step(args.seed)
    parts(args.seed)


if __name__ == "__main__":
    main()
