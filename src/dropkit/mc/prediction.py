"""`Prediction`: a mean prediction with its uncertainty measures, built from samples."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from dropkit import uncertainty as U


@dataclass
class Prediction:
    """The result of `MCDropout.predict`.

    Attributes:
        task: ``"classification"`` or ``"regression"``.
        mean: predictive probabilities ``(B, C)`` (classification) or predictive mean
            ``(B, ...)`` (regression).
        samples: the samples ``(S, B, ...)`` (logits or probabilities as the model gives them, or
            regression means) when kept, else None.
        n_samples: S, the number of passes behind each prediction.
        strategy, strategy_reason: how the samples were drawn and why.
        predictive_entropy, expected_entropy, mutual_information, variation_ratio, class_std:
            classification measures (see `dropkit.uncertainty`); None for regression.
        epistemic_variance, aleatoric_variance, total_variance: regression measures; None for
            classification.
        log_var_samples: sampled log-variances ``(S, B, ...)`` of a heteroscedastic head.
        tau: the homoscedastic noise precision used, if any.
        samples_per_batch: S used for each predicted batch, in order (with ``samples="auto"``
            they differ; ``n_samples`` is then the largest).
        target_log_likelihood: per-point mixture log-likelihood ``(B, ...)`` of the targets
            passed to ``predict(x, target=...)`` (regression with a noise model), computed while
            streaming so it needs no kept samples; `log_likelihood` returns it for those targets.
        likelihood_target: the targets it was computed for.
        token_mask: for token outputs ``(B, T, V)``, the mask of real tokens ``(B, T)`` (from
            the inputs' ``attention_mask``) that `sequence` leaves padding out with.
    """

    task: str
    mean: torch.Tensor
    n_samples: int
    strategy: str
    strategy_reason: str
    samples: torch.Tensor | None = None
    predictive_entropy: torch.Tensor | None = None
    expected_entropy: torch.Tensor | None = None
    mutual_information: torch.Tensor | None = None
    variation_ratio: torch.Tensor | None = None
    class_std: torch.Tensor | None = None
    epistemic_variance: torch.Tensor | None = None
    aleatoric_variance: torch.Tensor | None = None
    total_variance: torch.Tensor | None = None
    log_var_samples: torch.Tensor | None = None
    tau: float | None = None
    samples_per_batch: list[int] | None = None
    target_log_likelihood: torch.Tensor | None = None
    likelihood_target: torch.Tensor | None = None
    token_mask: torch.Tensor | None = None

    @classmethod
    def classification(cls, samples: torch.Tensor, *, from_logits: bool, keep: bool,
                       strategy: str, reason: str,
                       mask: torch.Tensor | None = None) -> Prediction:
        """Measures from class samples ``(S, B, C)`` or token samples ``(S, B, T, V)``."""
        measures = U.classification_measures(samples, from_logits=from_logits)  # one pass
        return cls(task="classification", n_samples=samples.shape[0], strategy=strategy,
                   strategy_reason=reason, samples=samples if keep else None,
                   token_mask=mask, **measures)

    def sequence(self, measure: str = "mutual_information", reduce: str = "mean"
                 ) -> torch.Tensor:
        """One number per sequence ``(B,)`` for token predictions: ``reduce`` ("mean", "sum"
        or "max") of ``measure`` ("predictive_entropy", "expected_entropy",
        "mutual_information") over the real tokens (padding left out)."""
        from dropkit._validate import check_choice
        from dropkit.errors import DropkitValueError, expected
        from dropkit.measures.tokens import MEASURES, sequence_reduce
        check_choice("measure", measure, MEASURES)
        values = getattr(self, measure)
        if self.task != "classification" or values is None or values.dim() < 2:
            raise DropkitValueError(expected("measure", "used on a token prediction (outputs "
                                             "(B, T, V))", f"a {self.task} prediction with "
                                             f"measures of shape {getattr(values, 'shape', None)}"))
        mask = None if self.token_mask is None else self.token_mask.bool()
        return sequence_reduce(values, mask, reduce)

    @classmethod
    def regression(cls, means: torch.Tensor, *, log_var: torch.Tensor | None,
                   tau: float | None, keep: bool, strategy: str, reason: str) -> Prediction:
        """Measures from sampled means ``(S, B, ...)`` (and log-variances, or a precision)."""
        epi = U.epistemic_variance(means)
        ale = U.aleatoric_variance(means, log_var=log_var, tau=tau)
        return cls(
            task="regression", mean=U.predictive_mean(means), n_samples=means.shape[0],
            strategy=strategy, strategy_reason=reason, samples=means if keep else None,
            epistemic_variance=epi, aleatoric_variance=ale, total_variance=epi + ale,
            log_var_samples=log_var if keep else None, tau=tau,
        )

    def log_likelihood(self, target: torch.Tensor) -> torch.Tensor:
        """Per-point log-likelihood of ``target`` under the mixture of the S Gaussians.

        Needs the kept samples and a noise model (``tau`` or a heteroscedastic head).
        """
        from dropkit.errors import DropkitValueError, expected

        if (self.samples is None and self.target_log_likelihood is not None
                and self.likelihood_target is not None and isinstance(target, torch.Tensor)
                and target.shape == self.likelihood_target.shape
                and torch.equal(target.to(self.likelihood_target.dtype), self.likelihood_target)):
            return self.target_log_likelihood
        if self.task != "regression" or self.samples is None:
            raise DropkitValueError(expected(
                "target", "used on a regression prediction made with keep_samples=True (or the "
                "targets passed to predict(x, target=...) when streaming)",
                f"a {self.task} prediction with samples="
                f"{'kept' if self.samples is not None else None}"))
        return U.gaussian_mixture_log_likelihood(self.samples, target, tau=self.tau,
                                                 log_var=self.log_var_samples)

    @staticmethod
    def concatenate(parts: list[Prediction]) -> Prediction:
        """Join predictions of consecutive batches along B (samples along their B dim)."""
        from dropkit.errors import DropkitTypeError, DropkitValueError, expected

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
        joined: dict[str, object] = {}
        same_s = len({p.n_samples for p in parts}) == 1
        for f in fields(Prediction):
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
                    else first.__dict__[f.name]
            elif isinstance(values[0], torch.Tensor):
                dim = 1 if f.name in ("samples", "log_var_samples") else 0
                joined[f.name] = torch.cat(values, dim)
            else:
                joined[f.name] = getattr(first, f.name)
        return Prediction(**joined)  # type: ignore[arg-type]

    @classmethod
    def from_measures(cls, task: str, measures: dict[str, torch.Tensor | None], *,
                      n_samples: int, strategy: str, reason: str, tau: float | None = None,
                      target: torch.Tensor | None = None,
                      mask: torch.Tensor | None = None) -> Prediction:
        """A prediction from streamed measures (no samples kept)."""
        return cls(task=task, n_samples=n_samples, strategy=strategy, strategy_reason=reason,
                   tau=tau, samples_per_batch=[n_samples], token_mask=mask,
                   likelihood_target=target if measures.get("target_log_likelihood")
                   is not None else None, **measures)  # type: ignore[arg-type]
