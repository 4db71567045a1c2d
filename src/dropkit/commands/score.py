"""`dropkit score`: MC dropout acquisition scores of a saved pool, in one process or on Ray."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dropkit.commands._common import non_negative, positive
from dropkit.errors import DropkitTypeError, DropkitValueError, expected

if TYPE_CHECKING:  # torch is imported when the command runs, so `dropkit --help` stays quick
    import torch


def _extras(args: argparse.Namespace) -> tuple[str, ...]:
    return ("ray",) if args.ray is not None else ()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "score", help="score a pool with MC dropout (BALD, entropy, ...), optionally on Ray",
        description="Builds the model with --model pkg.module:factory (a function taking no "
        "argument), loads --weights (a state_dict) if given, and scores every row of --data "
        "(.npy or .pt). Prints the top-k rows and writes every per-example score to --out. "
        "With --ray, chunks of the pool are scored by a Ray actor pool (a local cluster, or "
        "the cluster at ADDRESS); the scores are the same as without it.")
    p.add_argument("--model", required=True, help="pkg.module:factory returning the model")
    p.add_argument("--weights", help="a state_dict saved with torch.save")
    p.add_argument("--data", required=True, help="the pool: a .npy or .pt file, rows first")
    p.add_argument("--measure", default="bald",
                   help="ranked for top-k: bald (default), max_entropy, variation_ratio, "
                   "mean_std, margin or random")
    p.add_argument("--k", type=int, default=10, help="rows to print, best first")
    p.add_argument("--samples", type=int, default=20, help="MC dropout passes")
    p.add_argument("--seed", type=int, default=0, help="seeds every chunk's masks")
    p.add_argument("--chunk", type=int, default=1024, help="rows per chunk")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="score on Ray: alone for a local cluster, or a cluster address")
    p.add_argument("--workers", type=int, default=2, help="Ray actors (with --ray)")
    p.add_argument("--out", help="write every column to this .npz file")
    p.set_defaults(func=run, extras=_extras)


def check(args: argparse.Namespace) -> None:
    """Every flag, before the model is built or the pool read."""
    from dropkit.active.measures import MEASURES

    if args.measure not in MEASURES:
        raise DropkitValueError(expected("--measure", f"one of {', '.join(MEASURES)}",
                                         repr(args.measure)))
    for flag in ("k", "samples", "chunk", "workers"):
        positive(f"--{flag}", getattr(args, flag))
    non_negative("--seed", args.seed)
    module_name, _, attr = args.model.partition(":")
    if not module_name or not attr:
        raise DropkitValueError(expected("--model", "'pkg.module:factory'", repr(args.model)))
    data = Path(args.data)
    if data.suffix not in (".npy", ".pt") or not data.is_file():
        raise DropkitValueError(expected("--data", "an existing .npy or .pt file", str(data)))
    if args.weights and not Path(args.weights).is_file():
        raise DropkitValueError(expected("--weights", "an existing state_dict file",
                                         str(args.weights)))
    if args.out and not Path(args.out).resolve().parent.is_dir():
        raise DropkitValueError(expected("--out", "a file in an existing folder",
                                         str(args.out)))


def load_factory(spec: str) -> torch.nn.Module:
    """``pkg.module:factory`` -> ``factory()``, checked to be an ``nn.Module``."""
    import torch

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise DropkitValueError(expected("--model", "'pkg.module:factory'", repr(spec)))
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise DropkitValueError(expected("--model", "an importable pkg.module:factory",
                                         f"{spec!r} ({err})")) from err
    model = factory()
    if not isinstance(model, torch.nn.Module):
        raise DropkitTypeError(expected("--model", "a factory returning an nn.Module",
                                        type(model).__name__))
    return model


def run(args: argparse.Namespace) -> int:
    check(args)
    import numpy as np
    import torch

    from dropkit.active.scoring import score_pool
    from dropkit.active.selection import top_k
    from dropkit.distributed.chunks import load_array

    model = load_factory(args.model)
    if args.weights:
        model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    model.eval()
    if args.ray is None:
        x = torch.from_numpy(load_array(args.data))
        scores = score_pool(model, x, samples=args.samples, seed=args.seed, chunk=args.chunk,
                            progress=args.progress)
        columns, best = scores.columns, top_k(scores[args.measure].double(),
                                              min(args.k, x.shape[0]))
    else:
        from dropkit.distributed import score_dataset

        res = score_dataset(model, Path(args.data), samples=args.samples, seed=args.seed,
                            chunk=args.chunk, measure=args.measure, k=args.k,
                            address=args.ray or None, workers=args.workers)
        columns, best = res.columns, res.top_k
    print(f"top {len(best)} of {len(columns[args.measure])} rows by {args.measure} "
          f"(S={args.samples}, seed {args.seed}{', on Ray' if args.ray is not None else ''}):")
    for rank, i in enumerate(best.tolist(), 1):
        print(f"{rank:>4}  row {i:<8} {args.measure} {float(columns[args.measure][i]):.6f}")
    if args.out:
        arrays: dict[str, Any] = {k: v.numpy() for k, v in columns.items()}
        np.savez(args.out, **arrays)
        print(f"wrote {args.out}")
    return 0
