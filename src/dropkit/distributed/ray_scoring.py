"""`score_dataset`: one call scoring a pool on Ray, the same as `score_pool` bitwise.

It starts a `RayScorer`, scores once and stops the actors. A loop that scores a pool every
round should keep one `RayScorer` instead, so the actors and the model are shipped once.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from dropkit.distributed.scorer import DistributedScores, RayScorer

__all__ = ["DistributedScores", "score_dataset"]


def score_dataset(model: nn.Module, data: Any, *, samples: int = 20, seed: int = 0,
                  chunk: int = 1024, measure: str = "bald", k: int = 10,
                  address: str | None = None, workers: int = 2, threads: int = 1,
                  from_logits: bool = True, strategy: str = "auto") -> DistributedScores:
    """Score a pool on Ray with ``workers`` actors; return its columns and top-``k``.

    Args:
        model: a trained model with dropout (pickled once into the object store).
        data: a tensor, numpy array, ``.npy``/``.pt`` path, a Ray Dataset of examples (column
            ``"x"``), or a chunked Dataset from `to_chunks`.
        samples, seed, chunk: as in `dropkit.active.score_pool` (same values, same scores).
        measure, k: the column ranked for the returned ``top_k`` (ties to the lower index).
        address: a Ray cluster to join (``"auto"``, ``"ray://host:10001"``); None uses the
            running session or starts a local one.
        workers: actors in the pool. threads: torch threads per actor.
    """
    scorer = RayScorer(model, samples=samples, chunk=chunk, address=address, workers=workers,
                       threads=threads, from_logits=from_logits, strategy=strategy)
    try:
        return scorer.score(data, seed=seed, measure=measure, k=k)
    finally:
        scorer.close()
