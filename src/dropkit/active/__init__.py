"""Bayesian active learning with MC dropout: acquisition scores, batch selection, the loop.

Three levels: `ActiveLearner(...).run()` for an experiment; `score_pool` + `acquire` to choose
the next batch from a trained model; pure functions on samples ``(S, B, C)`` (`bald`,
`batchbald`, `select`, ...) underneath.
"""

from dropkit.active.batchbald import BatchBALDResult, batchbald
from dropkit.active.measures import (
    MEASURES,
    bald,
    from_prediction,
    margin,
    max_entropy,
    mean_std,
    random,
    score,
    variation_ratio,
)
from dropkit.active.selection import SELECTIONS, select, top_k

__all__ = [
    "MEASURES",
    "SELECTIONS",
    "BatchBALDResult",
    "bald",
    "batchbald",
    "from_prediction",
    "margin",
    "max_entropy",
    "mean_std",
    "random",
    "score",
    "select",
    "top_k",
    "variation_ratio",
]
