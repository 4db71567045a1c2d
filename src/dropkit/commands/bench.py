"""``dropkit bench uci``: the MC-dropout UCI regression benchmark against the published table.

Every flag, ``--out`` (writable?) and every data set (readable, finite, enough rows, a target
that varies) are checked before any training; a mistake exits 2 with one line. As each group
of splits finishes, the data set's partial result is checkpointed (atomically) in
``OUT/uci.checkpoint/``; ``--resume`` keeps those groups. ``OUT/uci.md``, ``uci.csv`` and
``uci.json`` are written at the end, as one set (``dropkit.experiments.record``): an
interrupted run leaves the previous set untouched.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropkit.commands._common import flag_wording
from dropkit.errors import DropkitError, DropkitValueError, expected

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
    uci.add_argument("--workers", type=int, default=None,
                     help="run the independent jobs (data set x group of splits) in this many "
                          "local processes, each with --threads torch threads (default 1: "
                          "here); the numbers do not depend on it")
    uci.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                     help="run the jobs as Ray tasks: alone for a local cluster, or a cluster "
                          "address ('auto', 'ray://head:10001'); one job per --threads CPUs "
                          "(not with --workers); the numbers do not depend on it")
    uci.add_argument("--resume", action="store_true",
                     help="keep what an interrupted run with the same settings finished "
                          "(OUT/uci.checkpoint/) and compute the rest: the same table, bit "
                          "for bit, as an uninterrupted run")
    uci.set_defaults(func=main, extras=_extras)


def _extras(args: argparse.Namespace) -> tuple[str, ...]:
    return ("ray",) if args.ray is not None else ()


@dataclass
class _Plan:
    config: Any  # UCIConfig (imported lazily)
    dtype: Any  # torch.dtype
    datasets: list[Any]  # UCIDataset
    out: Path
    checkpoints: Any  # uci_checkpoint.Checkpoints
    resume: dict[str, Any]  # name -> UCIResult
    command: str | None


def _config(args: argparse.Namespace):  # noqa: ANN202 - UCIConfig, imported lazily
    from dropkit.bench.uci_config import UCIConfig

    overrides = {
        "epochs": args.epochs,
        "epoch_multiplier": args.epoch_multiplier,
        "n_splits": args.n_splits,
        "mc_samples": args.mc_samples,
        "seed": args.seed,
        "splits_per_batch": args.splits_per_batch,
        "backend": args.backend,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return UCIConfig.quick(**overrides) if args.quick else UCIConfig(**overrides)


def main(args: argparse.Namespace) -> int:
    """Run the benchmark; returns the exit code (2 on bad input or data, before any work)."""
    try:
        plan = _plan(args)
    except DropkitError as err:
        print(f"dropkit bench uci: {err}", file=sys.stderr)
        return 2
    import torch

    from dropkit.bench.uci_jobs import run_uci_jobs
    from dropkit.bench.uci_report import write_report

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    progress = getattr(args, "progress", True)  # False with --no-progress, --quiet, TQDM_DISABLE
    try:
        results = run_uci_jobs(
            plan.datasets, plan.config, dtype=plan.dtype, resume=plan.resume,
            on_group_done=plan.checkpoints.save, jobs_runner=_runner(args), progress=progress,
            on_dataset_done=lambda r: print(f"{r.dataset}: done", file=sys.stderr))
        write_report(results, plan.out, command=plan.command)
    except DropkitError as err:
        print(f"dropkit bench uci: {err}", file=sys.stderr)
        return 2
    print((plan.out / "uci.md").read_text())
    return 0


def _runner(args: argparse.Namespace) -> Any:  # a JobRunner, imported lazily
    """Where the jobs run: Ray tasks (--ray), local processes (--workers N), or here."""
    threads = args.threads or 1
    if args.ray is not None:
        from dropkit.distributed.jobs import RayJobs

        return RayJobs(args.ray or None, threads=threads)
    from dropkit.experiments.jobs import job_runner

    return job_runner(args.workers or 1, threads)


def _plan(args: argparse.Namespace) -> _Plan:
    """Everything checked before any training: flags, --out, data sets, the checkpoints."""
    import torch

    from dropkit.bench.uci_checkpoint import CHECKPOINT_DIR, Checkpoints
    from dropkit.bench.uci_protocol import check_protocol
    from dropkit.datasets.uci import load_uci, split_names
    from dropkit.experiments import record

    if args.threads is not None and args.threads < 1:
        raise DropkitValueError(expected("--threads", "a positive integer", args.threads))
    if args.workers is not None and args.workers < 1:
        raise DropkitValueError(expected("--workers", "a positive integer", args.workers))
    if args.workers is not None and args.ray is not None:
        raise DropkitValueError(expected("--workers", "no --workers with --ray (Ray runs one "
                                         "job per --threads CPUs of its cluster)",
                                         args.workers))
    try:
        config = _config(args)
    except DropkitError as err:
        raise flag_wording(err, args) from None
    names = split_names(args.datasets, "--datasets")
    out = record.check_output_dir(args.out, "--out")
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    datasets = []
    for name in names:
        try:
            datasets.append(load_uci(name, args.root, n_splits=config.n_splits))
        except DropkitError as err:
            raise flag_wording(err, args) from None
    for dataset in datasets:
        check_protocol(dataset, config)
    checkpoints = Checkpoints(out / CHECKPOINT_DIR, config, dtype)
    resume = {}
    for dataset in datasets:
        partial = checkpoints.load(dataset) if args.resume else None
        if partial is not None:
            resume[dataset.name] = partial
            print(f"{dataset.name}: resuming after {len(partial.splits)} finished splits",
                  file=sys.stderr)
    if not args.resume:  # only now, when every check has passed: a fresh run starts afresh
        for dataset in datasets:
            checkpoints.clear(dataset)
    command = "dropkit " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else None
    return _Plan(config, dtype, datasets, out, checkpoints, resume, command)
