"""Streaming statistics for the predictor: uncertainty measures from chunks of samples.

The accumulators live in `dropkit.measures` (they are also the source of the pure functions
of `dropkit.uncertainty`); this module keeps their names where the predictor imports them.
"""

from __future__ import annotations

from dropkit.measures.classification import ClassificationStream
from dropkit.measures.regression import RegressionStream

__all__ = ["ClassificationStream", "RegressionStream"]
