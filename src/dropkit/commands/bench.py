"""``dropkit bench uci``: the MC-dropout UCI regression benchmark against the published table.

Each data set's results go to ``OUT/<dataset>.json`` as its groups of splits finish, and
``OUT/uci.md`` / ``OUT/uci.csv`` / ``OUT/uci.json`` are rewritten from every
``OUT/<dataset>.json`` present, so two processes may fill one folder with different sets.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from dropkit.errors import DropkitError

__all__ = ["main", "register"]

_DEFAULT_DATASETS = "bostonHousing,energy,wine-quality-red,power-plant,naval-propulsion-plant"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bench`` with its nested ``uci`` subcommand."""
    bench = subparsers.add_parser("bench", help="reproduce published benchmarks")
    inner = bench.add_subparsers(dest="bench_command", required=True)
    uci = inner.add_parser(
        "uci", help="MC dropout on the UCI regression splits vs. Gal & Ghahramani's numbers",
        description="Runs the 2018 grid-search protocol (defaults: the published settings).",
    )
    uci.add_argument("--root", default=None,
                     help="folder with <name>/data/ (default: $DROPKIT_UCI_ROOT, else download "
                          "into ~/.cache/dropkit/uci)")
    uci.add_argument("--datasets", default=_DEFAULT_DATASETS, help="comma-separated names")
    uci.add_argument("--out", required=True, help="folder for uci.md, uci.csv, uci.json")
    uci.add_argument("--quick", action="store_true",
                     help="UCIConfig.quick(): 5 epochs, 2 splits, 200 MC passes (smoke test)")
    uci.add_argument("--epochs", type=int, default=None, help="override the epoch count")
    uci.add_argument("--epoch-multiplier", type=int, default=None)
    uci.add_argument("--n-splits", type=int, default=None)
    uci.add_argument("--mc-samples", type=int, default=None, help="T (default 10000)")
    uci.add_argument("--seed", type=int, default=None)
    uci.add_argument("--splits-per-batch", type=int, default=None,
                     help="train this many splits' networks at once (default: all)")
    uci.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    uci.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    uci.add_argument("--backend", default=None,  # checked by UCIConfig, which lists the values
                     help="UCIConfig.backend: native (fused C kernels), torch (torch ops) or "
                          "auto (native where a C compiler builds it; the default)")
    uci.set_defaults(func=main)


def _config(args: argparse.Namespace):  # noqa: ANN202 - UCIConfig, imported lazily
    from dropkit.bench.uci_config import UCIConfig

    overrides = {
        "epochs": args.epochs,
        "epoch_multiplier": args.epoch_multiplier,
        "n_splits": args.n_splits,
        "mc_samples": args.mc_samples,
        "seed": args.seed,
        "backend": args.backend,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return UCIConfig.quick(**overrides) if args.quick else UCIConfig(**overrides)


def main(args: argparse.Namespace) -> int:
    """Run the benchmark; returns the exit code (2 on bad input or data)."""
    import torch

    from dropkit.bench.uci_protocol import UCIResult, run_uci
    from dropkit.bench.uci_report import write_report
    from dropkit.datasets.uci import load_uci, split_names

    command = "dropkit " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else None
    try:
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        config = _config(args)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        names = split_names(args.datasets)
        dtype = torch.float64 if args.dtype == "float64" else torch.float32

        def save(result: UCIResult) -> None:
            part = out / f"{result.dataset}.json.part"
            part.write_text(json.dumps(result.to_dict(), indent=2))
            part.replace(out / f"{result.dataset}.json")  # atomic: another process may read
            everything = [UCIResult.from_dict(json.loads(p.read_text()))
                          for p in sorted(out.glob("*.json")) if p.name != "uci.json"]
            write_report(everything, out, command=command)

        for name in names:
            dataset = load_uci(name, args.root, n_splits=config.n_splits)
            run_uci(dataset, config, splits_per_batch=args.splits_per_batch, dtype=dtype,
                    progress=True, on_group_done=save)
            print(f"{name}: done, {out / 'uci.md'}", file=sys.stderr)
    except DropkitError as err:
        print(f"dropkit bench uci: {err}", file=sys.stderr)
        return 2
    print((out / "uci.md").read_text())
    return 0
