"""How many samples one CPU pass should carry: per-sample time at k samples per pass vs one.

Not a test. The evidence behind `dropkit.mc.chunking.CPU_ACTIVATION_BUDGET` (the seeded rule).
Needs transformers (the dev extras); run from the repository root:

    PYTHONPATH=src:. .venv/bin/python benchmarks/samples_per_pass.py --threads 2 [--large]

For each model and batch: the largest activation of one sample's pass, the rule's choice, and
the seconds per sample of a seeded `dropkit.sample` of S = 8 samples with k = 1 (a loop) and
k = 2, 4, 8 (stacked, ``max_batch = k * B``), medians of 3 interleaved rounds (each round in the
other order than the last) and the ratio to k = 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/
from tests._torchvision import allow_import  # noqa: E402

allow_import()  # transformers imports torchvision, whose compiled ops need CUDA torch
from hf_speed import build  # noqa: E402
from mc_speed import CNNHead, _calibrate_bn  # noqa: E402

import dropkit  # noqa: E402
from dropkit.mc import chunking  # noqa: E402
from dropkit.mc.inputs import check_inputs  # noqa: E402

S = 8


def cases(large: bool) -> list[tuple[str, nn.Module, object, int]]:
    out: list[tuple[str, nn.Module, object, int]] = []
    shapes = [("bert", 1), ("bert", 2)] + ([("bert", 8), ("gpt2", 8)] if large else [])
    for kind, b in shapes:
        model, enc = build(kind, False, "sdpa", b, 128, True)
        out.append((f"{kind}-base shape, batch {b} x 128", model, enc, b))
    torch.manual_seed(0)
    cnn = CNNHead()
    _calibrate_bn(cnn, torch.randn(256, 1, 28, 28))
    out.append(("cnn+bn (mc_speed (a)), batch 64, uncached", cnn.eval(),
                torch.randn(64, 1, 28, 28), 64))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--large", action="store_true",
                    help="also batch 8 x 128 on both transformers (about 10 more minutes)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# samples_per_pass: {args.threads} threads, torch {torch.__version__}, S = {S}, "
          f"{args.rounds} interleaved rounds (medians)", flush=True)
    for name, model, x, b in cases(args.large):
        inputs = check_inputs(x, None)
        per = chunking.largest_activation(model, inputs)
        rule_k, _ = chunking.rule(model, inputs, S, None)
        ks = [1, 2, 4, 8]

        def run(k: int, model: nn.Module = model, x: object = x, b: int = b) -> None:
            if k == 1:
                dropkit.sample(model, x, S, seed=0, strategy="loop")
            else:
                dropkit.sample(model, x, S, seed=0, strategy="stacked", max_batch=k * b)

        for k in ks:
            run(k)  # warm-up (and the plan)
        t: dict[int, list[float]] = {k: [] for k in ks}
        for r in range(args.rounds):
            for k in ks if r % 2 == 0 else ks[::-1]:
                t0 = time.perf_counter()
                run(k)
                t[k].append((time.perf_counter() - t0) / S)
        med = {k: statistics.median(v) for k, v in t.items()}
        print(f"{name}: {per / 2**20:.2f} MiB per sample, rule k = {rule_k}; " + "; ".join(
            f"k={k}: {med[k] * 1e3:.0f} ms/sample ({med[k] / med[1]:.2f}x; rounds "
            + "/".join(f"{v * 1e3:.0f}" for v in t[k]) + ")" for k in ks), flush=True)


if __name__ == "__main__":
    main()
