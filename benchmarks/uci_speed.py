"""Batched vs. one-network-at-a-time cost of the full MC-dropout UCI protocol on one data set.

The full protocol trains 20 x 12 grid networks plus 20 retrained ones for 4000 epochs each and
evaluates each with 10,000 MC passes. Both sides are timed on the same machine, interleaved in
rounds, and extrapolated to the full protocol the same way:

- batched: ``train_batched`` of all 240 grid networks (and the 20 retrained ones) for a few
  epochs, ``mc_evaluate`` of all of them for a few passes (dropkit.bench.uci_batched), with
  the protocol's dropout rates; with ``--backend`` (default auto: the fused C kernels where
  they compile) and, for comparison, with torch ops only;
- sequential (torch.nn): one ``torch.nn`` network with ``torch.optim.Adam`` (weight decay in
  the loss, a fresh permutation per epoch, batch 128), and its MC passes as a loop of forward
  calls with dropout on, as the original code does; a few networks are timed;
- sequential (same kernels): the batched code itself with K = 1, one network at a time, which
  isolates what batching buys from how each step is written.

Cost = (time per epoch) x epochs x networks + (time per MC pass) x T x networks, with medians
over rounds. Times are CPU seconds of this process (``time.process_time``), which a machine
shared with other jobs distorts far less than wall time; with one thread they equal the wall
time of an unloaded core. ``--full`` also runs the real batched protocol and prints its wall time.

    OMP_NUM_THREADS=1 python benchmarks/uci_speed.py --root ../shared/uci
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from dropkit.bench.uci_batched import (
    BACKENDS,
    glorot_init,
    mc_evaluate,
    resolve_backend,
    train_batched,
)
from dropkit.bench.uci_config import UCIConfig
from dropkit.bench.uci_protocol import run_uci
from dropkit.datasets.uci import load_uci


def _seq_network(D: int, H: int, p: float) -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Dropout(p), torch.nn.Linear(D, H), torch.nn.ReLU(),
                               torch.nn.Dropout(p), torch.nn.Linear(H, 1))


def _time_seq_epochs(X: torch.Tensor, y: torch.Tensor, epochs: int, reg: float) -> float:
    """Seconds per epoch of one plain network (the sequential baseline)."""
    net = _seq_network(X.shape[1], 50, 0.05)
    net.train()  # dropout on, as Keras `training=True`
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    weights = [net[1].weight, net[4].weight]
    t0 = time.process_time()
    for _ in range(epochs):
        perm = torch.randperm(X.shape[0])
        for start in range(0, X.shape[0], 128):
            idx = perm[start : start + 128]
            loss = ((net(X[idx]).squeeze(-1) - y[idx]) ** 2).mean()
            loss = loss + reg * sum(w.pow(2).sum() for w in weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return (time.process_time() - t0) / epochs


@torch.no_grad()
def _time_seq_passes(X: torch.Tensor, passes: int) -> float:
    """Seconds per MC pass of one plain network over X (the original's predict loop)."""
    net = _seq_network(X.shape[1], 50, 0.05)
    net.train()
    t0 = time.process_time()
    out = [net(X) for _ in range(passes)]
    del out
    return (time.process_time() - t0) / passes


def _time_batched(rates: list[float], X: torch.Tensor, y: torch.Tensor, epochs: int,
                  Xe: torch.Tensor, passes: int, seed: int, backend: str) -> tuple[float, float]:
    """Seconds per epoch and per MC pass of one network per rate, all in one batch."""
    g = torch.Generator().manual_seed(seed)
    K = len(rates)
    Xk, yk = X.expand(K, *X.shape).contiguous(), y.expand(K, *y.shape).contiguous()
    p = torch.tensor(rates)  # the mask cost depends on the rates: the protocol's own
    model = glorot_init(K, X.shape[1], 50, generator=g)
    t0 = time.process_time()
    train_batched(model, Xk, yk, p, torch.full((K,), 1e-6), epochs=epochs, generator=g,
                  backend=backend)
    t_epoch = (time.process_time() - t0) / epochs
    Xek = Xe.expand(K, *Xe.shape).contiguous()
    ye = torch.zeros(K, Xe.shape[0])
    t0 = time.process_time()
    mc_evaluate(model, Xek, ye, p, y_scale=torch.ones(K), tau=torch.ones(K),
                n_samples=passes, generator=g, backend=backend)
    return t_epoch, (time.process_time() - t0) / passes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=None)
    ap.add_argument("--dataset", default="bostonHousing")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20, help="epochs timed per round and side")
    ap.add_argument("--passes", type=int, default=200, help="MC passes timed per round, side")
    ap.add_argument("--seq-networks", type=int, default=3, help="networks timed sequentially")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backend", default="auto", choices=BACKENDS,
                    help="backend of the batched side (torch ops are always timed too)")
    ap.add_argument("--full", action="store_true", help="also run the real batched protocol")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    ds = load_uci(args.dataset, args.root)
    cfg = UCIConfig()
    E, T = cfg.total_epochs(ds.n_epochs), cfg.mc_samples
    n_grid = len(ds.dropout_rates) * len(ds.tau_values)
    S = ds.n_splits
    X_tr, y_tr, X_te, _ = ds.split(0)
    n_sub = int(cfg.train_fraction * X_tr.shape[0])

    def z(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((a - a.mean(0)) / (a.std(0) + 1e-12), dtype=torch.float32)

    Xs, ys, Xv = z(X_tr[:n_sub]), z(y_tr[:n_sub]), z(X_tr[n_sub:])
    Xf, yf, Xt = z(X_tr), z(y_tr), z(X_te)
    keys = ("grid_e", "grid_p", "fin_e", "fin_p")
    sides = ("seq", "one", "bat", "bat_torch")
    times: dict[str, dict[str, list[float]]] = {sd: {k: [] for k in keys} for sd in sides}
    # the protocol's rates: every (rate, tau) cell of every split; retrained nets cycle them
    grid_rates = [r for _ in range(S) for r in ds.dropout_rates for _ in ds.tau_values]
    fin_rates = [ds.dropout_rates[i % len(ds.dropout_rates)] for i in range(S)]
    phases = {"grid": (Xs, ys, Xv, grid_rates), "fin": (Xf, yf, Xt, fin_rates)}
    for r in range(args.rounds):
        for _ in range(args.seq_networks):
            times["seq"]["grid_e"].append(_time_seq_epochs(Xs, ys, args.epochs, 1e-6))
            times["seq"]["grid_p"].append(_time_seq_passes(Xv, args.passes))
        times["seq"]["fin_e"].append(_time_seq_epochs(Xf, yf, args.epochs, 1e-6))
        times["seq"]["fin_p"].append(_time_seq_passes(Xt, args.passes))
        for ph, (Xa, ya, Xb, rates) in phases.items():
            for side, nets, backend in (("one", [0.05], args.backend),
                                        ("bat", rates, args.backend),
                                        ("bat_torch", rates, "torch")):
                e, p = _time_batched(nets, Xa, ya, args.epochs, Xb, args.passes, r, backend)
                times[side][f"{ph}_e"].append(e)
                times[side][f"{ph}_p"].append(p)
    med = {sd: {k: statistics.median(v) for k, v in times[sd].items()} for sd in sides}
    n_nets = {"grid": S * n_grid, "fin": S}
    # sequential times are per network, batched times are for all networks of a phase
    copies = {"seq": n_nets, "one": n_nets, "bat": {"grid": 1, "fin": 1},
              "bat_torch": {"grid": 1, "fin": 1}}
    total = {
        sd: sum((med[sd][f"{ph}_e"] * E + med[sd][f"{ph}_p"] * T) * copies[sd][ph]
                for ph in ("grid", "fin"))
        for sd in sides
    }
    native = "native" if resolve_backend(args.backend, torch.float32, Xs.shape[1], 50) else "torch"
    print(f"data set {ds.name}: {S} splits x {n_grid} grid + {S} retrained networks, "
          f"{E} epochs, T = {T}; torch {torch.__version__}, {args.threads} thread(s); "
          f"batched backend {native} (and torch ops for comparison)")
    for ph, label in (("grid", f"grid ({n_nets['grid']} nets)"), ("fin", f"retrain ({S} nets)")):
        print(f"  {label}: per epoch seq {med['seq'][ph + '_e'] * 1e3:.2f} ms/net, batched "
              f"{med['bat'][ph + '_e'] * 1e3:.1f} ms/all (torch ops "
              f"{med['bat_torch'][ph + '_e'] * 1e3:.1f}); per MC pass seq "
              f"{med['seq'][ph + '_p'] * 1e3:.3f} ms/net, batched "
              f"{med['bat'][ph + '_p'] * 1e3:.2f} ms/all (torch ops "
              f"{med['bat_torch'][ph + '_p'] * 1e3:.2f})")
    print(f"extrapolated full protocol (CPU time): torch.nn one at a time "
          f"{total['seq'] / 3600:.2f} h, {native} kernels one at a time "
          f"{total['one'] / 3600:.2f} h, batched {total['bat'] / 60:.1f} min ({native}), "
          f"{total['bat_torch'] / 60:.1f} min (torch ops)")
    print(f"speed-up batched vs torch.nn one at a time: {total['seq'] / total['bat']:.1f}x "
          f"({native}), {total['seq'] / total['bat_torch']:.1f}x (torch ops); batched vs the "
          f"same kernels one at a time: {total['one'] / total['bat']:.1f}x "
          f"(medians of {args.rounds} interleaved rounds)")
    if args.full:
        t0, c0 = time.perf_counter(), time.process_time()
        res = run_uci(ds, cfg, progress=True)
        print(f"full batched protocol on {ds.name}: {time.perf_counter() - t0:.0f} s wall, "
              f"{time.process_time() - c0:.0f} s CPU, "
              f"RMSE {res.rmse_mean:.3f} ± {res.rmse_se:.3f}, LL {res.ll_mean:.3f} ± "
              f"{res.ll_se:.3f}")


if __name__ == "__main__":
    main()
