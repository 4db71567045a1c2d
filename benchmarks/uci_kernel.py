"""The three paths of the batched UCI trainer side by side: C kernels, numba kernels, torch ops.

The workload of ``benchmarks/uci_speed.py``'s batched side (all 240 grid networks and the 20
retrained ones of one data set, the protocol's dropout rates, a few epochs and MC passes each,
extrapolated to the full protocol's epochs and passes), timed for each path in interleaved
rounds (the order rotates every round) on a shared machine; medians over rounds of CPU seconds
of this process (``time.process_time``). Each path is warmed up first, so the C compilation and
numba's JIT (both cached on disk after the first run) are not in the figures; they are printed
apart. ``DROPKIT_NATIVE`` selects the kernels (``c`` / ``numba``), as a user would.

    OMP_NUM_THREADS=1 python benchmarks/uci_kernel.py --root ../shared/uci
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from dropkit.bench.uci_batched import glorot_init, mc_evaluate, resolve_backend, train_batched
from dropkit.bench.uci_config import UCIConfig
from dropkit.datasets.uci import load_uci
from dropkit.errors import DropkitError

PATHS = {"c": ("native", "c"), "numba": ("native", "numba"), "torch": ("torch", "1")}


def _time_phase(path: str, rates: list[float], X: torch.Tensor, y: torch.Tensor,
                Xe: torch.Tensor, epochs: int, passes: int, seed: int
                ) -> tuple[float, float, torch.Tensor]:
    """CPU seconds per epoch and per MC pass of all networks, and their final w2 (K, H, 1)."""
    backend, env = PATHS[path]
    os.environ["DROPKIT_NATIVE"] = env
    g = torch.Generator().manual_seed(seed)
    K = len(rates)
    Xk, yk = X.expand(K, *X.shape).contiguous(), y.expand(K, *y.shape).contiguous()
    p = torch.tensor(rates)
    model = glorot_init(K, X.shape[1], 50, generator=g)
    t0 = time.process_time()
    train_batched(model, Xk, yk, p, torch.full((K,), 1e-6), epochs=epochs, generator=g,
                  backend=backend)
    t_epoch = (time.process_time() - t0) / epochs
    Xek = Xe.expand(K, *Xe.shape).contiguous()
    t0 = time.process_time()
    mc_evaluate(model, Xek, torch.zeros(K, Xe.shape[0]), p, y_scale=torch.ones(K),
                tau=torch.ones(K), n_samples=passes, generator=g, backend=backend)
    return t_epoch, (time.process_time() - t0) / passes, model.w2


def _available(path: str, D: int) -> str | None:
    """None if ``path`` runs here, else why not; times its first use (compile or JIT)."""
    backend, env = PATHS[path]
    os.environ["DROPKIT_NATIVE"] = env
    try:
        for dtype in (torch.float32,):
            if backend == "native":
                resolve_backend(backend, dtype, D, 50)
    except DropkitError as e:
        return str(e)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=None)
    ap.add_argument("--dataset", default="bostonHousing")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=10, help="epochs timed per round and path")
    ap.add_argument("--passes", type=int, default=100, help="MC passes timed per round, path")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    ds = load_uci(args.dataset, args.root)
    cfg = UCIConfig()
    E, T = cfg.total_epochs(ds.n_epochs), cfg.mc_samples
    S = ds.n_splits
    X_tr, y_tr, X_te, _ = ds.split(0)
    n_sub = int(cfg.train_fraction * X_tr.shape[0])

    def z(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((a - a.mean(0)) / (a.std(0) + 1e-12), dtype=torch.float32)

    grid_rates = [r for _ in range(S) for r in ds.dropout_rates for _ in ds.tau_values]
    fin_rates = [ds.dropout_rates[i % len(ds.dropout_rates)] for i in range(S)]
    phases = {"grid": (z(X_tr[:n_sub]), z(y_tr[:n_sub]), z(X_tr[n_sub:]), grid_rates),
              "fin": (z(X_tr), z(y_tr), z(X_te), fin_rates)}
    D = X_tr.shape[1]

    paths, first_use = [], {}
    for path in PATHS:
        t0 = time.perf_counter()
        why = _available(path, D)
        if why is None:
            paths.append(path)
            # one tiny run so that the JIT of every kernel (both phases' shapes) is done
            for Xa, ya, Xb, rates in phases.values():
                _time_phase(path, rates[:2], Xa[:40], ya[:40], Xb[:5], 1, 1, 0)
            first_use[path] = time.perf_counter() - t0
        else:
            print(f"path {path}: not available here ({why})")
    times = {pt: {f"{ph}_{k}": [] for ph in phases for k in "ep"} for pt in paths}
    final = {}
    for r in range(args.rounds):
        order = paths[r % len(paths):] + paths[: r % len(paths)]  # rotate: no path always first
        for path in order:
            for ph, (Xa, ya, Xb, rates) in phases.items():
                e, p, w2 = _time_phase(path, rates, Xa, ya, Xb, args.epochs, args.passes, r)
                times[path][f"{ph}_e"].append(e)
                times[path][f"{ph}_p"].append(p)
                final[path, ph, r] = w2
    med = {pt: {k: statistics.median(v) for k, v in times[pt].items()} for pt in paths}
    total = {pt: sum(med[pt][f"{ph}_e"] * E + med[pt][f"{ph}_p"] * T for ph in phases)
             for pt in paths}
    print(f"data set {ds.name}: {len(grid_rates)} grid + {S} retrained networks, {E} epochs, "
          f"T = {T}; torch {torch.__version__}, {args.threads} thread(s); medians of "
          f"{args.rounds} interleaved rounds of {args.epochs} epochs and {args.passes} passes; "
          f"CPU time")
    ref = "c" if "c" in paths else paths[0]
    for path in paths:
        m = med[path]
        print(f"  {path:>5}: per epoch grid {m['grid_e'] * 1e3:7.1f} ms, retrain "
              f"{m['fin_e'] * 1e3:6.2f} ms; per MC pass grid {m['grid_p'] * 1e3:6.2f} ms, "
              f"retrain {m['fin_p'] * 1e3:6.3f} ms; full protocol {total[path] / 60:6.1f} min "
              f"= {total[path] / total[ref]:.2f}x {ref}; first use {first_use[path]:.1f} s wall")
    # the same draws of the generator: every path must have trained the same networks
    for (path, ph, r), w2 in final.items():
        gap = float((w2 - final[ref, ph, r]).abs().max())
        if gap > 1e-2:
            print(f"  warning: {path} differs from {ref} by {gap:.3g} ({ph}, round {r})")


if __name__ == "__main__":
    main()
