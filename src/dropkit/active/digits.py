"""The digits experiment: acquisition functions compared on scikit-learn's 8x8 digits.

It checks, at small scale, the qualitative result of Gal, Islam & Ghahramani (ICML 2017,
MNIST, their Table 1): BALD and variation ratio reach 10% test error with about half the
labels random acquisition needs. Here the pool is the digits training split (1,258 images),
the test split (539) measures accuracy, a 64-128-128-10 dropout MLP is retrained from scratch
each round, and the result per acquisition is the number of labels at which the mean accuracy
over seeds first reaches ``target``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from dropkit._progress import progress_bar
from dropkit.active.learner import ACQUISITIONS, ActiveConfig, ActiveLearner, lookup
from dropkit.active.scoring import PoolScorer, derive_seed
from dropkit.errors import DropkitValueError, expected

#: The comparison of the ICML 2017 paper, plus BatchBALD.
DEFAULT_ACQUISITIONS = ("bald", "batchbald", "variation_ratio", "max_entropy", "mean_std",
                        "margin", "random")


@dataclass(frozen=True)
class DigitsConfig:
    """One digits comparison; every field is written into results.json."""

    acquisitions: tuple[str, ...] = DEFAULT_ACQUISITIONS
    seeds: tuple[int, ...] = (0, 1, 2)
    initial: int = 20  # balanced: initial // 10 labels per class
    batch_size: int = 20
    budget: int = 200
    samples: int = 20
    steps: int = 300  # minibatch steps per fit, whatever the labelled-set size
    hidden: int = 128
    p: float = 0.5
    target: float = 0.90  # test accuracy = 1 - the paper's 10% error
    threads: int = 1
    quick: bool = False

    def __post_init__(self) -> None:
        for a in self.acquisitions:
            if a not in ACQUISITIONS:
                raise DropkitValueError(expected("acquisitions", f"names from {ACQUISITIONS}",
                                                 repr(a)))
        if not self.acquisitions or not self.seeds:
            raise DropkitValueError(expected("acquisitions and seeds", "non-empty",
                                             (self.acquisitions, self.seeds)))
        if self.initial < 10 or self.initial % 10:
            raise DropkitValueError(expected("initial", "a multiple of 10 (balanced classes)",
                                             self.initial))

    @classmethod
    def quick_config(cls, **kw: object) -> DigitsConfig:
        """A smoke run in seconds: one seed, 3 rounds, few samples and epochs."""
        base = dict(seeds=(0,), batch_size=10, budget=20, samples=8, steps=100, hidden=64,
                    quick=True)
        return cls(**{**base, **kw})  # type: ignore[arg-type]


def _balanced_initial(y: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(derive_seed(seed, 99))
    picks = [torch.nonzero(y == c).squeeze(1) for c in range(10)]
    return torch.cat([idx[torch.randperm(len(idx), generator=g)[:per_class]] for idx in picks])


def model(cfg: DigitsConfig) -> torch.nn.Module:
    """The 64-hidden-hidden-10 dropout MLP the experiment trains (untrained; a `RayScorer`
    can start from it, each round's fitted model is shipped to it)."""
    from dropkit.lab.train import mlp

    return mlp(64, [cfg.hidden, cfg.hidden], 10, p=cfg.p)


def run_digits(cfg: DigitsConfig, *, progress: bool = True,
               scorer: PoolScorer | None = None) -> dict[str, object]:
    """Run every acquisition x seed; return curves (labels vs accuracy/NLL) and per-run rounds.

    ``scorer`` scores the pool each round (default: here; a `dropkit.distributed.RayScorer`
    on Ray, with the same selections)."""
    from dropkit.datasets.digits import load_digits
    from dropkit.lab.train import TrainConfig, train

    before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        data = load_digits(seed=0)
        x, y, xt, yt = data.flat_train, data.y_train, data.flat_test, data.y_test

        def fit(xl: torch.Tensor, yl: torch.Tensor, seed: int) -> torch.nn.Module:
            torch.manual_seed(seed)
            net = model(cfg)
            epochs = max(1, math.ceil(cfg.steps / math.ceil(len(yl) / 32)))
            return train(net, xl, yl, TrainConfig(epochs=epochs, lr=1e-3, batch_size=32,
                                                    weight_decay=1e-4, seed=seed))

        runs: list[dict[str, object]] = []
        jobs = [(a, s) for a in cfg.acquisitions for s in cfg.seeds]
        for acq, seed in progress_bar(jobs, desc="digits runs", unit="run",
                              enabled=progress):
            t0 = time.perf_counter()
            config = ActiveConfig(acquisition=acq, batch_size=cfg.batch_size,
                                  budget=cfg.budget, samples=cfg.samples, seed=seed,
                                  candidates=max(100, cfg.batch_size))
            res = ActiveLearner(fit, x, lookup(y), initial=_balanced_initial(
                y, cfg.initial // 10, seed), x_test=xt, y_test=yt, config=config,
                progress=False, scorer=scorer).run()
            runs.append({"acquisition": acq, "seed": seed, "seconds": time.perf_counter() - t0,
                         **res.to_dict()})
    finally:
        torch.set_num_threads(before)
    return {"config": asdict(cfg), "pool": len(y), "test": len(yt), "runs": runs,
            "summary": summarise(runs, cfg.target)}


def summarise(runs: list[dict[str, Any]], target: float) -> dict[str, object]:
    """Per acquisition: labels axis, mean and standard error of accuracy over seeds, and the
    labels at which the mean accuracy first reaches ``target`` (None if never)."""
    from dropkit.lab.base import mean_se

    out: dict[str, object] = {}
    for acq in dict.fromkeys(r["acquisition"] for r in runs):
        rows = [r["rounds"] for r in runs if r["acquisition"] == acq]
        labels = [rd["labelled"] for rd in rows[0]]
        acc = [mean_se([rs[i]["accuracy"] for rs in rows]) for i in range(len(labels))]
        nll = [mean_se([rs[i]["nll"] for rs in rows]) for i in range(len(labels))]
        reach = next((n for n, (m, _) in zip(labels, acc, strict=True) if m >= target), None)
        out[acq] = {"labels": labels, "accuracy_mean": [m for m, _ in acc],
                    "accuracy_se": [e for _, e in acc], "nll_mean": [m for m, _ in nll],
                    "labels_to_target": reach, "final_accuracy": acc[-1][0]}
    return out
