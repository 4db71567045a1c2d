"""Measure the Bayesian baselines against NUTS and the configuration survey (not a test).

    .venv/bin/python benchmarks/lab_baselines.py bayes --seeds 0,1,2 [--quick] [--out DIR]
    .venv/bin/python benchmarks/lab_baselines.py survey [--quick] [--out DIR] [--tv-shim]

--tv-shim first runs the tests' torchvision shim (tests/_torchvision.py), as the test session
does: torchvision 0.28.0 (CUDA build) and timm do not import beside the CPU torch without it,
and the survey then reports them as "not importable here".

Prints the verdicts with their rules and a Markdown table, the wall and CPU seconds, and writes
the per-seed numbers (JSON) and the figures (PNG) under --out. One torch thread, as in the lab.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from dropkit.lab import bayes_gold, config_survey
from dropkit.lab.base import figure_png


def _bayes(args: argparse.Namespace, out: Path) -> None:
    s = bayes_gold.Settings().quick() if args.quick else bayes_gold.Settings()
    rows = []
    for seed in (int(x) for x in args.seeds.split(",")):
        wall, cpu = time.perf_counter(), time.process_time()
        rows.append(bayes_gold.measure(s, seed))
        print(f"seed {seed}: wall {time.perf_counter() - wall:.1f} s, cpu "
              f"{time.process_time() - cpu:.1f} s, load {os.getloadavg()[0]:.1f}")
    verdicts = bayes_gold.judge(rows, s)
    for v in verdicts:
        print(f"[{v['id']}] {v['verdict']}: {v['criterion']}")
    summ = bayes_gold.summary(rows)
    print("| method | W2 data | W2 gap | W2 outside | epistemic std data/gap/outside "
          "| CPU s |\n|---|---|---|---|---|---|")
    for m in bayes_gold.METHODS:
        r = summ[m]
        print(f"| {m} | " + " | ".join(f"{r[g]['w2']['mean']:.3f} ± {r[g]['w2']['se']:.3f}"
                                       for g in bayes_gold.REGIONS)
              + " | " + "/".join(f"{r[g]['epistemic_std']['mean']:.3f}"
                                 for g in bayes_gold.REGIONS)
              + f" | {r['cost_s']['mean']:.1f} |")
    h = summ["hmc"]
    print("| hmc (split-half W2) | " + " | ".join(f"{h[g]['split_half_w2']['mean']:.3f}"
                                                 for g in bayes_gold.REGIONS)
          + " | " + "/".join(f"{h[g]['epistemic_std']['mean']:.3f}"
                             for g in bayes_gold.REGIONS) + f" | {h['cost_s']['mean']:.1f} |")
    print("MC dropout rate chosen per seed:", [r["mc_dropout_p"] for r in rows])
    (out / "bayes.json").write_text(json.dumps({"settings": s.__dict__, "per_seed": rows,
                                                "verdicts": verdicts}, default=str))
    for i, fig in enumerate(bayes_gold.figures(rows, s)):
        (out / f"bayes_{i}.png").write_bytes(figure_png(fig))


def _survey(args: argparse.Namespace, out: Path) -> None:
    s = config_survey.Settings.quick() if args.quick else config_survey.Settings()
    wall, cpu = time.perf_counter(), time.process_time()
    result = config_survey.measure(s)
    print(f"wall {time.perf_counter() - wall:.1f} s, cpu {time.process_time() - cpu:.1f} s")
    print(config_survey.table_markdown(result["rows"]))
    print("unavailable:", result["unavailable"] or "none")
    verdicts = config_survey.judge([result])
    for v in verdicts:
        print(f"[{v['id']}] {v['verdict']}: {v['criterion']}\n    {v['numbers']}")
    (out / "survey.json").write_text(json.dumps({"survey": result, "verdicts": verdicts}))
    (out / "survey.png").write_bytes(figure_png(config_survey.figures([result])[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("bayes", "survey"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="lab_baselines_out")
    parser.add_argument("--tv-shim", action="store_true")
    args = parser.parse_args()
    if args.tv_shim:
        from tests._torchvision import allow_import

        allow_import()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (_bayes if args.what == "bayes" else _survey)(args, out)


if __name__ == "__main__":
    main()
