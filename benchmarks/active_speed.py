"""Pool scoring speed for active learning: dropkit vs baal vs a naive loop; Ray vs one process.

Not a test. Run from the repository root (baal installed beside torch, see shared/PEERS.md):

    OMP_NUM_THREADS=1 PYTHONPATH=src:. python benchmarks/active_speed.py --n 50000 --samples 20

Every method scores the same pool of N inputs with S MC dropout samples and returns BALD
(mutual information) per example; the table gives the wall time and the ratio to dropkit.
  dropkit            dropkit.active.score_pool (streamed measures, chunks of --batch rows)
  baal               ModelWrapper(MCDropoutModule(model)).predict_on_dataset(...) -> (N, C, S),
                     then baal's BALD().compute_score: baal's own pool prediction
  naive loop         per batch, S passes with the dropout modules on, then BALD
  ray 2 actors       dropkit.distributed.RayScorer on a local 2-CPU Ray cluster (2 actors, 1
                     thread each), started once before timing (its start, with the model
                     shipped to each actor, is timed separately): the actors are reused by
                     every call, as in an active-learning loop. Compare with dropkit at 1
                     thread (--threads 1): the overhead at this size, and the per-worker
                     throughput from which scaling is estimated.
Before timing, every method runs once on a pool with the timed chunk shapes (dropkit builds one
plan per chunk shape: the full chunk and the last, shorter one), and its BALD is compared with
dropkit's (the same up to MC error). Rounds are interleaved (each round runs every method once,
in a rotated order) and times are medians.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mc_speed import MLP, CNNHead, _calibrate_bn  # noqa: E402

from dropkit.active import score_pool  # noqa: E402
from dropkit.uncertainty import mutual_information  # noqa: E402


def make_models(n: int, seed: int) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    torch.manual_seed(seed)
    cnn = CNNHead()
    _calibrate_bn(cnn, torch.randn(256, 1, 28, 28))
    return {"cnn+bn, dropout head": (cnn, torch.randn(n, 1, 28, 28)),
            "mlp 784-1024-1024-10": (MLP().eval(), torch.randn(n, 784))}


def dropkit_runner(model: nn.Module, s: int, batch: int) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: score_pool(model, x, samples=s, seed=0, chunk=batch)["bald"]


def naive_runner(model: nn.Module, s: int, batch: int) -> Callable[[torch.Tensor], torch.Tensor]:
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]

    def run(x: torch.Tensor) -> torch.Tensor:
        out = []
        model.eval()
        for m in drops:
            m.train()
        try:
            with torch.no_grad():
                for i in range(0, x.shape[0], batch):
                    xb = x[i:i + batch]
                    out.append(mutual_information(torch.stack([model(xb) for _ in range(s)]),
                                                  from_logits=True))
        finally:
            model.eval()
        return torch.cat(out)

    return run


def baal_runner(model: nn.Module, s: int, batch: int) -> Callable[[torch.Tensor], torch.Tensor]:
    from baal.active.heuristics import BALD
    from baal.bayesian.dropout import MCDropoutModule
    from baal.modelwrapper import ModelWrapper, TrainingArgs

    wrapper = ModelWrapper(MCDropoutModule(copy.deepcopy(model)),
                           TrainingArgs(batch_size=batch, use_cuda=False, workers=0))

    def run(x: torch.Tensor) -> torch.Tensor:
        data = torch.utils.data.TensorDataset(x, torch.zeros(x.shape[0]))
        logits = wrapper.predict_on_dataset(data, iterations=s, verbose=False)  # (N, C, S)
        probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
        return torch.from_numpy(BALD().compute_score(probs))

    return run


def ray_runner(model: nn.Module, s: int, batch: int) -> Callable[[torch.Tensor], torch.Tensor]:
    from dropkit.distributed import RayScorer

    t0 = time.perf_counter()
    scorer = RayScorer(model, samples=s, chunk=batch, workers=2, threads=1).start()
    ray_runner.started = time.perf_counter() - t0  # type: ignore[attr-defined]
    return lambda x: scorer.score(x, seed=0)["bald"]


def warm_pool(x: torch.Tensor, batch: int) -> torch.Tensor:
    """Rows whose chunks have the timed shapes: one full chunk, then the pool's last one."""
    rest = x.shape[0] % batch
    return torch.cat([x[:batch], x[:rest]]) if rest and x.shape[0] > batch else x[:batch]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000, help="pool size")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--batch", type=int, default=1024, help="rows per chunk / loader batch")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (not the Ray rows)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="cnn,mlp", help="comma-separated subset of cnn,mlp")
    ap.add_argument("--methods", default="dropkit,naive,baal,ray",
                    help="comma-separated subset of dropkit,naive,baal,ray (dropkit always)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"command: {' '.join(sys.argv)}")
    print(f"python {platform.python_version()}, torch {torch.__version__}, "
          f"{os.cpu_count()} cores, {args.threads} thread(s), N={args.n}, S={args.samples}")
    methods = set(args.methods.split(","))
    makers: dict[str, Callable] = {"dropkit": dropkit_runner}
    if "naive" in methods:
        makers["naive loop"] = naive_runner
    try:
        # torchvision's CUDA wheel beside the CPU torch breaks torchmetrics (baal imports it);
        # the tests' shim makes its pure-Python part importable (see tests/_torchvision.py).
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests._torchvision import allow_import

        allow_import()
        if "baal" in methods:
            import baal.active.heuristics  # noqa: F401
            makers["baal"] = baal_runner
    except ImportError as err:
        print(f"baal not available ({err}): its row is missing")
    if "ray" in methods:
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        print(f"ray {ray.__version__}: local 2-CPU cluster started in "
              f"{time.perf_counter() - t0:.1f} s (not in the times below)")
        makers["ray 2 actors"] = ray_runner
    wanted = set(args.models.split(","))
    for name, (model, x) in make_models(args.n, 0).items():
        if name.split()[0].split("+")[0] not in wanted:
            continue
        runners = {k: make(model, args.samples, args.batch) for k, make in makers.items()}
        if "ray 2 actors" in runners:
            print(f"  {name} / ray: 2 actors started and the model shipped to each in "
                  f"{ray_runner.started:.1f} s (once; not in the times below)")  # type: ignore
        warm = warm_pool(x, args.batch)
        ref = runners["dropkit"](warm)
        for k, run in runners.items():  # warm-up on the timed chunk shapes, and agreement
            t0 = time.perf_counter()
            got = run(warm)
            print(f"  {name} / {k}: BALD mean {float(got.mean()):.4f} vs dropkit "
                  f"{float(ref.mean()):.4f} on {warm.shape[0]} rows (warm-up "
                  f"{time.perf_counter() - t0:.1f} s)", flush=True)
        times: dict[str, list[float]] = {k: [] for k in runners}
        for r in range(args.rounds):
            print(f"  round {r + 1}/{args.rounds}", flush=True)
            order = list(runners)[r % len(runners):] + list(runners)[:r % len(runners)]
            for k in order:
                t0 = time.perf_counter()
                runners[k](x)
                times[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"\n{name}: pool N={args.n}, S={args.samples}, medians of {args.rounds} rounds")
        print(f"{'method':<32}{'seconds':>10}{'x dropkit':>12}{'rows/s':>12}")
        for k, t in med.items():
            print(f"{k:<32}{t:>10.2f}{t / med['dropkit']:>12.2f}{args.n / t:>12.0f}")
        if "ray 2 actors" in med and args.threads == 1:
            one = med["dropkit"]
            per_worker = args.n / one
            print(f"ray: {one / med['ray 2 actors']:.2f}x the one-process speed with 2 actors "
                  f"(ideal 2x); per-worker throughput {per_worker:.0f} rows/s, so k workers "
                  f"score at most k x {per_worker:.0f} rows/s, less the driver's chunking, "
                  f"transfer and collection (the gap measured here)")
        print(f"rounds (s): { {k: [round(t, 2) for t in v] for k, v in times.items()} }",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
