"""`dropkit active`: acquisition functions compared on scikit-learn's digits (report + json)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from dropkit.active.digits import DEFAULT_ACQUISITIONS

    p = subparsers.add_parser(
        "active", help="active learning with MC dropout on digits: BALD, BatchBALD, ... vs random",
        description="Runs the active-learning loop on scikit-learn's bundled digits (no "
        "download) for each acquisition function and seed, and writes results.json and "
        "report.html (labels-vs-accuracy curves with error bands) to --out.")
    p.add_argument("--acquisitions", default=",".join(DEFAULT_ACQUISITIONS),
                   help="comma-separated acquisition functions")
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dropkit.active.digits import DigitsConfig, run_digits
    from dropkit.active.report import document
    from dropkit.lab.runner import environment
    from dropkit.report.html import render_html

    fields = dict(acquisitions=tuple(a.strip() for a in args.acquisitions.split(",") if a),
                  initial=args.initial, target=args.target)
    if args.quick:
        cfg = DigitsConfig.quick_config(**fields)
    else:
        cfg = DigitsConfig(seeds=tuple(int(s) for s in args.seeds.split(",") if s),
                           budget=args.budget, batch_size=args.batch_size,
                           samples=args.samples, steps=args.steps, **fields)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    result = run_digits(cfg)
    seconds = time.perf_counter() - t0
    doc, figures = document(result, command="dropkit " + " ".join(sys.argv[2:]),
                            started=started, seconds=seconds,
                            environment=environment(cfg.threads))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=1))
    (out / "report.html").write_text(render_html(doc, figures))
    record = doc["claims"][0]
    print(f"{record['key_number']}\nverdict: {record['verdict']} ({record['criterion']})\n"
          f"wrote {out / 'results.json'} and {out / 'report.html'} in {seconds:.1f} s")
    return 0
