"""What the per-call staleness check costs: `fingerprint(model)` against a small predict.

Issue 11 asked for a check on every call that detects any change to a model (structure, rates,
code) and costs under 1% of a small predict. This prints both times, measured side by side in
one run, and their ratio, for a small MLP and a BERT-shaped model (random weights).

    python benchmarks/plan_check.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dropkit  # noqa: E402
from dropkit.inspection.shadow import fingerprint  # noqa: E402
from dropkit.mc.sampling import SAMPLING_LOCK  # noqa: E402


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report(name: str, model: nn.Module, x, samples: int) -> None:
    mc = dropkit.MCDropout(model, samples=samples, seed=0, progress=False)
    mc.predict(x)  # plan once
    predict = _median(lambda: mc.predict(x), 15)
    check = _median(lambda: fingerprint(model), 200)
    lock = _median(lambda: SAMPLING_LOCK.acquire() and SAMPLING_LOCK.release(), 2000)
    n = sum(1 for _ in model.modules())
    print(f"{name}: {n} modules; predict (S={samples}) {predict * 1e3:.2f} ms; fingerprint "
          f"{check * 1e6:.1f} us = {100 * check / predict:.2f}% of it; sampling lock "
          f"{lock * 1e9:.0f} ns")


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 64),
                        nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 4)).eval()
    report("MLP 16-64-64-4, batch 32", mlp, torch.randn(32, 16), 30)
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from _torchvision import allow_import
        allow_import()
        import transformers
    except ImportError:
        print("transformers not installed: BERT row skipped")
        return
    cfg = transformers.BertConfig(num_hidden_layers=12, hidden_size=768, num_attention_heads=12,
                                  intermediate_size=3072, num_labels=2)
    bert = transformers.BertForSequenceClassification._from_config(cfg).eval()
    enc = {"input_ids": torch.randint(0, 30000, (1, 16))}
    report("BERT-base shape, batch 1 x 16 tokens", bert, enc, 4)


if __name__ == "__main__":
    main()
