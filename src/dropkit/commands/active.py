"""`dropkit active`: acquisition functions compared on scikit-learn's digits (report + json)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from dropkit.commands._common import flag_wording, positive, seeds_flag
from dropkit.errors import DropkitError, DropkitValueError, expected


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "active", help="active learning with MC dropout on digits: BALD, BatchBALD, ... vs random",
        description="Runs the active-learning loop on scikit-learn's bundled digits (no "
        "download) for each acquisition function and seed, and writes results.json and "
        "report.html (labels-vs-accuracy curves with error bands) to --out.")
    p.add_argument("--acquisitions", default=None,
                   help="comma-separated acquisition functions (default: bald, batchbald, "
                   "variation_ratio, max_entropy, mean_std, margin, random)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--initial", type=int, default=20, help="balanced initial labels")
    p.add_argument("--batch-size", type=int, default=20, help="labels acquired per round")
    p.add_argument("--budget", type=int, default=200, help="labels acquired in total")
    p.add_argument("--samples", type=int, default=20, help="MC dropout passes")
    p.add_argument("--steps", type=int, default=300, help="training steps per round")
    p.add_argument("--target", type=float, default=0.90, help="test accuracy to reach")
    p.add_argument("--quick", action="store_true", help="a smoke run in seconds (one seed, "
                   "3 rounds, small model): checks the pipeline, not the claim")
    p.add_argument("--out", default="active-results", help="output directory")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="score the pool each round on Ray (an actor per CPU of the cluster): "
                   "alone for a local cluster, or a cluster address; the same selections")
    p.set_defaults(func=run, extras=_extras)


def _extras(args: argparse.Namespace) -> tuple[str, ...]:
    return ("lab", "ray") if args.ray is not None else ("lab",)


def ray_scorer(cfg: Any, address: str | None) -> Any:  # RayScorer, imported lazily
    """A `RayScorer` with one actor (one torch thread, like the run here) per cluster CPU."""
    from dropkit.active.digits import model
    from dropkit.distributed import RayScorer
    from dropkit.distributed._ray import connect

    cpus = int(connect(address).cluster_resources().get("CPU", 1))
    return RayScorer(model(cfg), samples=cfg.samples, address=address, workers=max(1, cpus),
                     threads=cfg.threads)


def config(args: argparse.Namespace) -> Any:  # DigitsConfig, imported lazily
    """The run's `DigitsConfig` from the flags; every flag checked, errors name the flag."""
    from dropkit.active.digits import DEFAULT_ACQUISITIONS, DigitsConfig
    from dropkit.experiments import record

    for flag in ("initial", "batch_size", "budget", "samples", "steps"):
        positive("--" + flag.replace("_", "-"), getattr(args, flag))
    if not 0 < args.target <= 1:
        raise DropkitValueError(expected("--target", "an accuracy in (0, 1]", args.target))
    acquisitions = (DEFAULT_ACQUISITIONS if args.acquisitions is None
                    else tuple(a.strip() for a in args.acquisitions.split(",") if a.strip()))
    fields = dict(acquisitions=acquisitions, initial=args.initial, target=args.target)
    try:
        if args.quick:
            cfg = DigitsConfig.quick_config(**fields)
        else:
            cfg = DigitsConfig(seeds=seeds_flag(args.seeds), budget=args.budget,
                               batch_size=args.batch_size, samples=args.samples,
                               steps=args.steps, **fields)
    except DropkitError as err:
        raise flag_wording(err, args) from None
    record.check_output_dir(args.out, "--out")
    return cfg


def run(args: argparse.Namespace) -> int:
    cfg = config(args)
    from dropkit.active.digits import run_digits
    from dropkit.active.report import document
    from dropkit.lab.runner import environment
    from dropkit.report.html import render_html

    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    scorer = ray_scorer(cfg, args.ray or None) if args.ray is not None else None
    try:
        result = run_digits(cfg, progress=args.progress, scorer=scorer)
    finally:
        if scorer is not None:
            scorer.close()
    seconds = time.perf_counter() - t0
    doc, figures = document(result, command="dropkit " + " ".join(sys.argv[2:]),
                            started=started, seconds=seconds,
                            environment=environment(cfg.threads))
    # where the pool was scored (the selections do not depend on it)
    doc["scoring"] = ({"engine": "local"} if scorer is None else
                      {"engine": "ray", "address": args.ray or "local",
                       "workers": scorer.workers, "threads": scorer.threads})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=1))
    (out / "report.html").write_text(render_html(doc, figures))
    record = doc["claims"][0]
    print(f"{record['key_number']}\nverdict: {record['verdict']} ({record['criterion']})\n"
          f"wrote {out / 'results.json'} and {out / 'report.html'} in {seconds:.1f} s")
    return 0
