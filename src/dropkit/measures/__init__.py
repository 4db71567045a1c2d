"""Where the uncertainty measures are computed: streaming accumulators and one validation layer.

* `classification.ClassificationStream`: entropy, expected entropy, mutual information,
  variation ratio, class std of samples ``(c, B, ..., C)``, token outputs included;
* `regression.RegressionStream`: variance split and target log-likelihood;
* `likelihood.MixtureLogLikelihood`: the Gaussian-mixture log-likelihood (also used by the UCI
  benchmark);
* `tokens`: per-token measures and per-sequence aggregates with an attention mask;
* `_checks`: the validation every path goes through.

`dropkit.uncertainty`'s pure functions are the one-chunk case of these streams, and
`MCDropout`'s predictions (`dropkit.mc.prediction`) are built from them.
"""

from dropkit.measures.classification import ClassificationStream
from dropkit.measures.likelihood import MixtureLogLikelihood
from dropkit.measures.regression import RegressionStream
from dropkit.measures.tokens import TokenUncertainty, sequence_reduce

__all__ = ["ClassificationStream", "MixtureLogLikelihood", "RegressionStream",
           "TokenUncertainty", "sequence_reduce"]
