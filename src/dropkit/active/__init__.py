"""Bayesian active learning with MC dropout: acquisition scores, batch selection, the loop.

Three levels: `ActiveLearner(...).run()` for an experiment; `score_pool` + `acquire` to choose
the next batch from a trained model; pure functions on samples ``(S, B, C)`` (`bald`,
`batchbald`, `select`, ...) underneath.
"""

from dropkit.active.batchbald import BatchBALDResult, batchbald
from dropkit.active.learner import (
    ACQUISITIONS,
    ActiveConfig,
    ActiveLearner,
    ActiveResult,
    Round,
    acquire,
    lookup,
)
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
from dropkit.active.scoring import COLUMNS, LocalScorer, PoolScorer, PoolScores, score_pool
from dropkit.active.selection import SELECTIONS, select, top_k

__all__ = [
    "ACQUISITIONS",
    "COLUMNS",
    "ActiveConfig",
    "ActiveLearner",
    "ActiveResult",
    "LocalScorer",
    "PoolScorer",
    "PoolScores",
    "Round",
    "acquire",
    "lookup",
    "score_pool",
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
