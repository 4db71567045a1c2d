"""What `MCDropout.predict` returns: a `ClassificationPrediction` or a `RegressionPrediction`.

Both are `Prediction`s (the fields every prediction has: the mean, S, the strategy and why,
the kept samples). Each is built from one accumulator of `dropkit.measures`, so the samples
are validated once, whether they were kept or streamed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch

from dropkit import uncertainty as U
from dropkit._validate import check_choice
from dropkit.errors import DropkitError, DropkitTypeError, DropkitValueError, expected
from dropkit.measures.regression import RegressionStream
from dropkit.measures.tokens import MEASURES, sequence_reduce

P = TypeVar("P", bound="Prediction")


@dataclass(kw_only=True)
class Prediction:
    """The fields every MC dropout prediction has (see the two subclasses for the measures).

    Attributes:
        task: ``"classification"`` or ``"regression"`` (a class attribute of the subclass).
        mean: predictive probabilities ``(B, C)`` (classification) or predictive mean
            ``(B, ...)`` (regression).
        n_samples: S, the number of passes behind each prediction.
        strategy, strategy_reason: how the samples were drawn and why.
        samples: the samples ``(S, B, ...)`` (logits or probabilities as the model gives them, or
            regression means) when kept, else None.
        samples_per_batch: S used for each predicted batch, in order (with ``samples="auto"``
            they differ; ``n_samples`` is then the largest).
    """

    task: ClassVar[str]
    mean: torch.Tensor
    n_samples: int
    strategy: str
    strategy_reason: str
    samples: torch.Tensor | None = None
    samples_per_batch: list[int] | None = None

    def sequence(self, measure: str = "mutual_information", reduce: str = "mean"
                 ) -> torch.Tensor:
        """Per-sequence measures exist for token classification only (see the subclass)."""
        check_choice("measure", measure, MEASURES)
        raise DropkitValueError(expected("measure", "used on a token prediction (outputs "
                                         "(B, T, V))", f"a {self.task} prediction"))

    def log_likelihood(self, target: torch.Tensor) -> torch.Tensor:
        """The mixture log-likelihood exists for regression only (see the subclass)."""
        raise DropkitValueError(expected(
            "target", "used on a regression prediction made with keep_samples=True (or the "
            "targets passed to predict(x, target=...) when streaming)",
            f"a {self.task} prediction"))

    @staticmethod
    def concatenate(parts: list[P]) -> P:
        """Join predictions of consecutive batches along B (samples along their B dim)."""
        if not isinstance(parts, (list, tuple)) or not all(isinstance(p, Prediction)
                                                           for p in parts):
            raise DropkitTypeError(expected("parts", "a list of Prediction objects",
                                            type(parts).__name__))
        if not parts:
            raise DropkitValueError(expected("parts", "at least one Prediction", "none"))
        tasks = {p.task for p in parts}
        if len(tasks) > 1:
            raise DropkitValueError(expected("parts", "predictions of one task",
                                             f"a mix of {sorted(tasks)}"))
        shapes = {tuple(p.mean.shape[1:]) for p in parts}
        if len(shapes) > 1:
            raise DropkitValueError(expected("parts", "predictions with the same per-row "
                                             "shape", f"shapes {sorted(shapes)}"))
        first = parts[0]
        joined: dict[str, Any] = {}
        same_s = len({p.n_samples for p in parts}) == 1
        for f in fields(first):
            values = [getattr(p, f.name) for p in parts]
            if f.name == "samples_per_batch":
                joined[f.name] = [s for p in parts for s in (p.samples_per_batch
                                                             or [p.n_samples])]
            elif f.name == "n_samples":
                joined[f.name] = max(values)
            elif f.name in ("samples", "log_var_samples") and not same_s:
                joined[f.name] = None  # batches of different S cannot be stacked
            elif any(v is None for v in values):
                joined[f.name] = None if isinstance(values[0], torch.Tensor) or values[0] is None \
                    else getattr(first, f.name)
            elif isinstance(values[0], torch.Tensor):
                dim = 1 if f.name in ("samples", "log_var_samples") else 0
                joined[f.name] = torch.cat(values, dim)
            else:
                joined[f.name] = getattr(first, f.name)
        return type(first)(**joined)

    @staticmethod
    def classification(samples: torch.Tensor, *, from_logits: bool, keep: bool,
                       strategy: str, reason: str,
                       mask: torch.Tensor | None = None) -> ClassificationPrediction:
        """Measures from class samples ``(S, B, C)`` or token samples ``(S, B, T, V)``."""
        measures = U.classification_measures(samples, from_logits=from_logits)  # one pass
        return ClassificationPrediction.from_measures(
            measures, n_samples=samples.shape[0], strategy=strategy, reason=reason,
            samples=samples if keep else None, mask=mask, samples_per_batch=None)

    @staticmethod
    def regression(means: torch.Tensor, *, log_var: torch.Tensor | None, tau: float | None,
                   keep: bool, strategy: str, reason: str,
                   target: torch.Tensor | None = None) -> RegressionPrediction:
        """Measures from sampled means ``(S, B, ...)`` (and log-variances, or a precision),
        with the mixture log-likelihood of ``target`` when given (one stream, one check)."""
        stream = RegressionStream(tau=tau, target=target)
        stream.update(means, log_var)
        pred = RegressionPrediction.from_measures(
            stream.measures(), n_samples=means.shape[0], strategy=strategy, reason=reason,
            tau=tau, target=target, samples_per_batch=None)
        # the law of total variance in the result dtype, as dropkit computed it before the
        # streams were the source (kept-sample results stay bitwise what they were)
        pred.total_variance = pred.epistemic_variance + pred.aleatoric_variance
        if keep:
            pred.samples, pred.log_var_samples = means, log_var
        return pred

    if not TYPE_CHECKING:  # hidden from type checkers: typed code uses the subclass's fields
        def __getattr__(self, name: str) -> None:
            """Deprecated: the other task's fields, which were always None, read as None."""
            if name in _ONLY_CLASSIFICATION or name in _ONLY_REGRESSION:
                warnings.warn(
                    f"`{name}` is not a field of a {self.task} prediction (it was always None) "
                    f"since dropkit 0.2; this read gives None until it is removed. Test "
                    "`pred.task` or isinstance(pred, dropkit.ClassificationPrediction) "
                    "instead.", DeprecationWarning, stacklevel=2)
                return None
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


@dataclass(kw_only=True)
class ClassificationPrediction(Prediction):
    """A classification prediction: the measures of `dropkit.uncertainty`, per row ``(B,)``
    (or per token ``(B, T)`` for outputs ``(B, T, V)``).

    Attributes:
        predictive_entropy, expected_entropy, mutual_information, variation_ratio: ``(B,)``.
        class_std: the standard deviation of each class probability over the samples
            ``(B, C)``.
        token_mask: for token outputs ``(B, T, V)``, the mask of real tokens ``(B, T)`` (from
            the inputs' ``attention_mask``) that `sequence` leaves padding out with.
    """

    task: ClassVar[str] = "classification"
    predictive_entropy: torch.Tensor
    expected_entropy: torch.Tensor
    mutual_information: torch.Tensor
    variation_ratio: torch.Tensor
    class_std: torch.Tensor
    token_mask: torch.Tensor | None = None

    @classmethod
    def from_measures(cls, measures: dict[str, torch.Tensor], *, n_samples: int,
                      strategy: str, reason: str, samples: torch.Tensor | None = None,
                      mask: torch.Tensor | None = None,
                      samples_per_batch: list[int] | None) -> ClassificationPrediction:
        """A prediction from the measures of a `ClassificationStream`."""
        missing = [f.name for f in fields(cls) if f.name in _ONLY_CLASSIFICATION_MEASURES
                   and f.name not in measures]
        if missing or "mean" not in measures:
            raise DropkitError(f"ClassificationPrediction: the stream did not track {missing}")
        return cls(mean=measures["mean"], n_samples=n_samples, strategy=strategy,
                   strategy_reason=reason, samples=samples, samples_per_batch=samples_per_batch,
                   token_mask=mask,
                   **{k: measures[k] for k in _ONLY_CLASSIFICATION_MEASURES})

    def sequence(self, measure: str = "mutual_information", reduce: str = "mean"
                 ) -> torch.Tensor:
        """One number per sequence ``(B,)`` for token predictions: ``reduce`` ("mean", "sum"
        or "max") of ``measure`` ("predictive_entropy", "expected_entropy",
        "mutual_information") over the real tokens (padding left out)."""
        check_choice("measure", measure, MEASURES)
        values: torch.Tensor = getattr(self, measure)
        if values.dim() < 2:
            raise DropkitValueError(expected("measure", "used on a token prediction (outputs "
                                             "(B, T, V))", f"a classification prediction with "
                                             f"measures of shape {tuple(values.shape)}"))
        mask = None if self.token_mask is None else self.token_mask.bool()
        return sequence_reduce(values, mask, reduce)


@dataclass(kw_only=True)
class RegressionPrediction(Prediction):
    """A regression prediction: the variance split of `dropkit.uncertainty`, ``(B, ...)``.

    Attributes:
        epistemic_variance, aleatoric_variance, total_variance: like ``mean``.
        log_var_samples: sampled log-variances ``(S, B, ...)`` of a heteroscedastic head (kept
            samples only).
        tau: the homoscedastic noise precision used, if any.
        target_log_likelihood: per-point mixture log-likelihood ``(B, ...)`` of the targets
            passed to ``predict(x, target=...)`` (with a noise model), computed while sampling
            so it needs no kept samples; `log_likelihood` returns it for those targets.
        likelihood_target: the targets it was computed for.
    """

    task: ClassVar[str] = "regression"
    epistemic_variance: torch.Tensor
    aleatoric_variance: torch.Tensor
    total_variance: torch.Tensor
    log_var_samples: torch.Tensor | None = None
    tau: float | None = None
    target_log_likelihood: torch.Tensor | None = None
    likelihood_target: torch.Tensor | None = None

    @classmethod
    def from_measures(cls, measures: dict[str, torch.Tensor | None], *, n_samples: int,
                      strategy: str, reason: str, tau: float | None = None,
                      target: torch.Tensor | None = None,
                      samples_per_batch: list[int] | None) -> RegressionPrediction:
        """A prediction from the measures of a `RegressionStream`."""
        got = {k: measures.get(k) for k in ("mean", "epistemic_variance",
                                             "aleatoric_variance", "total_variance")}
        if any(v is None for v in got.values()):
            raise DropkitError("RegressionPrediction: the stream gave no variance split")
        ll = measures.get("target_log_likelihood")
        return cls(n_samples=n_samples, strategy=strategy, strategy_reason=reason, tau=tau,
                   samples_per_batch=samples_per_batch, target_log_likelihood=ll,
                   likelihood_target=target if ll is not None else None,
                   **got)  # type: ignore[arg-type]  # checked not None above

    def log_likelihood(self, target: torch.Tensor) -> torch.Tensor:
        """Per-point log-likelihood of ``target`` under the mixture of the S Gaussians.

        Needs the kept samples and a noise model (``tau`` or a heteroscedastic head), or the
        targets given to ``predict(x, target=...)``.
        """
        if (self.samples is None and self.target_log_likelihood is not None
                and self.likelihood_target is not None and isinstance(target, torch.Tensor)
                and target.shape == self.likelihood_target.shape
                and torch.equal(target.to(self.likelihood_target.dtype), self.likelihood_target)):
            return self.target_log_likelihood
        if self.samples is None:
            raise DropkitValueError(expected(
                "target", "used on a regression prediction made with keep_samples=True (or the "
                "targets passed to predict(x, target=...) when streaming)",
                "a regression prediction with samples=None"))
        return U.gaussian_mixture_log_likelihood(self.samples, target, tau=self.tau,
                                                 log_var=self.log_var_samples)


_ONLY_CLASSIFICATION_MEASURES = ("predictive_entropy", "expected_entropy", "mutual_information",
                                 "variation_ratio", "class_std")
_ONLY_CLASSIFICATION = frozenset(_ONLY_CLASSIFICATION_MEASURES + ("token_mask",))
_ONLY_REGRESSION = frozenset(("epistemic_variance", "aleatoric_variance", "total_variance",
                              "log_var_samples", "tau", "target_log_likelihood",
                              "likelihood_target"))
