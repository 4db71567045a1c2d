"""Score a pool chunk by chunk with streamed MC dropout: per-example measures, no samples kept.

The pool is cut into chunks of ``chunk`` rows in order; chunk ``i`` draws its dropout masks
from a seed derived from ``(seed, i)`` alone. So a chunk scores the same wherever it runs (one
process, or any Ray worker: `dropkit.distributed`), and results are bitwise reproducible on
CPU with the same thread count.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from dropkit._progress import progress_bar
from dropkit._validate import check_choice, check_positive_int, check_tensor
from dropkit.active.measures import MEASURES, from_prediction
from dropkit.errors import DropkitValueError, expected
from dropkit.mc.mcdropout import MCDropout

#: Columns of a scored pool: every measure, plus the predicted class.
COLUMNS = (*MEASURES, "prediction")


def derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed from ``seed`` and keys (chunk index, round, purpose), by SeedSequence."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(2, np.uint64)[0] >> 1)


def score_chunk(model: nn.Module, x: torch.Tensor, *, samples: int, seed: int, index: int,
                from_logits: bool = True, strategy: str = "auto") -> dict[str, torch.Tensor]:
    """Every column of `COLUMNS` for chunk number ``index`` of a pool, ``{name: (B,)}``."""
    mc = MCDropout(model, samples=samples, strategy=strategy, from_logits=from_logits,
                   keep_samples=False, seed=derive_seed(seed, index, 0), progress=False,
                   chunk=samples)
    pred = mc.predict(x)
    noise = torch.Generator().manual_seed(derive_seed(seed, index, 1))
    out = {m: from_prediction(pred, m, generator=noise) for m in MEASURES}
    out["prediction"] = pred.mean.argmax(dim=-1)
    return out


@dataclass(frozen=True)
class PoolScores:
    """Per-example columns ``{name: (N,)}`` of a scored pool and the settings behind them."""

    columns: dict[str, torch.Tensor]
    samples: int
    seed: int
    chunk: int

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.columns[check_choice("name", name, COLUMNS)]


def chunks(x: torch.Tensor, chunk: int) -> Iterator[tuple[int, torch.Tensor]]:
    """``(index, rows)`` of consecutive chunks of ``chunk`` rows."""
    for i, start in enumerate(range(0, x.shape[0], chunk)):
        yield i, x[start:start + chunk]


def score_pool(model: nn.Module, x: torch.Tensor, *, samples: int = 20, seed: int = 0,
               chunk: int = 1024, from_logits: bool = True, strategy: str = "auto",
               progress: bool = False) -> PoolScores:
    """Score every row of the pool ``x`` ``(N, ...)`` in one process (see the module doc)."""
    x = check_tensor("x", x)
    if x.dim() == 0 or x.shape[0] == 0:
        raise DropkitValueError(expected("x", "a non-empty pool (N >= 1 rows)", tuple(x.shape)))
    samples = check_positive_int("samples", samples)
    chunk = check_positive_int("chunk", chunk)
    seed = check_positive_int("seed", seed, minimum=0)
    parts = [score_chunk(model, rows, samples=samples, seed=seed, index=i,
                         from_logits=from_logits, strategy=strategy)
             for i, rows in progress_bar(chunks(x, chunk), total=-(-x.shape[0] // chunk),
                                 desc="scoring pool", unit="chunk",
                                 enabled=progress)]
    columns = {name: torch.cat([p[name] for p in parts]) for name in COLUMNS}
    return PoolScores(columns, samples, seed, chunk)


class PoolScorer(Protocol):
    """What `dropkit.active.ActiveLearner` scores its pool with each round: ``model``'s
    `COLUMNS` for every row of ``x``, ``{name: (N,)}``, equal to `score_pool`'s (so the
    learner selects the same points wherever the scoring ran). `LocalScorer` scores here;
    `dropkit.distributed.RayScorer` on a Ray cluster."""

    def score_model(self, model: nn.Module, x: torch.Tensor, *, samples: int, seed: int,
                    chunk: int, from_logits: bool = True) -> dict[str, torch.Tensor]: ...


class LocalScorer:
    """`PoolScorer` in this process: `score_pool` (the learner's default)."""

    def score_model(self, model: nn.Module, x: torch.Tensor, *, samples: int, seed: int,
                    chunk: int, from_logits: bool = True) -> dict[str, torch.Tensor]:
        return score_pool(model, x, samples=samples, seed=seed, chunk=chunk,
                          from_logits=from_logits).columns
