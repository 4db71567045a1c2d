"""Uncertainty measures from Monte Carlo samples (pure functions, samples first).

Classification functions take ``samples`` shaped ``(S, B, ..., C)`` with the class dim last
(``(S, B, C)`` for a classifier, ``(S, B, T, V)`` for a language model) and a required keyword
``from_logits``: dropkit never guesses whether a tensor holds logits or probabilities.
Probabilities are checked (in [0, 1], summing to 1 over C); ``0 * log 0`` is taken as 0.

Regression functions take ``means`` shaped ``(S, B)`` or ``(S, B, D)`` (any trailing dims are
allowed) and, for the aleatoric part, either a per-sample predicted log-variance ``log_var``
(heteroscedastic head, same shape as ``means``) or a homoscedastic model precision ``tau``
(aleatoric variance ``1 / tau``).

Each function is the one-chunk case of the streaming accumulators of `dropkit.measures`
(`ClassificationStream`, `RegressionStream`), so streamed and stored samples give the same
numbers and go through the same input checks. Everything is accumulated in float64 (finite for
any finite float32 input, logits of +-3e38 included); float64 inputs give float64 results and
every other dtype float32. Results are statistics, not part of an autograd graph (inputs are
detached).

Token-level uncertainty: `token_measures` gives per-token measures ``(B, T)`` and per-sequence
aggregates ``(B,)`` with padding left out via an attention mask.

Example:
    >>> import torch
    >>> agree = torch.tensor([[[0.9, 0.1]], [[0.9, 0.1]]])  # (S=2, B=1, C=2)
    >>> float(mutual_information(agree, from_logits=False))
    0.0
    >>> logits = torch.zeros(4, 2, 3, 5)  # (S, B, T, V)
    >>> mask = torch.tensor([[1, 1, 0], [1, 0, 0]])  # (B, T): 0 marks padding
    >>> tok = token_measures(logits, from_logits=True, mask=mask)
    >>> tok.predictive_entropy.shape, tok.sequence("predictive_entropy", "sum").shape
    (torch.Size([2, 3]), torch.Size([2]))
"""

from __future__ import annotations

import torch

from dropkit.measures._checks import one_noise_model, regression_means
from dropkit.measures.classification import ClassificationStream
from dropkit.measures.regression import RegressionStream
from dropkit.measures.tokens import TokenUncertainty

__all__ = [
    "predictive_probs",
    "predictive_entropy",
    "expected_entropy",
    "mutual_information",
    "variation_ratio",
    "class_std",
    "classification_measures",
    "token_measures",
    "TokenUncertainty",
    "predictive_mean",
    "epistemic_variance",
    "aleatoric_variance",
    "total_variance",
    "gaussian_mixture_log_likelihood",
]


def _class_stream(samples: object, from_logits: object, *names: str,
                  mask: torch.Tensor | None = None) -> ClassificationStream:
    """The one-chunk case of `ClassificationStream`, tracking only what ``names`` need."""
    stream = ClassificationStream(from_logits=from_logits, mask=mask)  # type: ignore[arg-type]
    stream._keep_only(names)
    stream._update(samples, "samples")
    return stream


def _one(samples: object, from_logits: object, name: str) -> torch.Tensor:
    return _class_stream(samples, from_logits, name).measures()[name]


# ----------------------------------------------------------------------------------------------
# classification
# ----------------------------------------------------------------------------------------------


def predictive_probs(samples: torch.Tensor, *, from_logits: bool) -> torch.Tensor:
    r"""Mean predictive distribution over the MC samples.

    .. math:: \bar p_{b,c} = \frac{1}{S} \sum_s \mathrm{softmax}(z_s)_{b,c}

    Shape:
        - samples: ``(S, B, ..., C)`` logits (``from_logits=True``) or probabilities.
        - output: ``(B, ..., C)``, summing to 1 over C.
    """
    return _one(samples, from_logits, "mean")


def predictive_entropy(samples: torch.Tensor, *, from_logits: bool) -> torch.Tensor:
    r"""Entropy of the mean predictive distribution (total uncertainty, in nats).

    .. math:: \mathbb{H}[\bar p] = -\sum_c \bar p_c \log \bar p_c,
              \quad \bar p = \frac{1}{S}\sum_s p_s

    Lies in ``[0, log C]``.

    Shape:
        - samples: ``(S, B, ..., C)`` logits (``from_logits=True``) or probabilities.
        - output: ``(B, ...)``.
    """
    return _one(samples, from_logits, "predictive_entropy")


def expected_entropy(samples: torch.Tensor, *, from_logits: bool) -> torch.Tensor:
    r"""Mean entropy of the per-sample distributions (aleatoric uncertainty, in nats).

    .. math:: \mathbb{E}_s \mathbb{H}[p_s] = -\frac{1}{S}\sum_s \sum_c p_{s,c} \log p_{s,c}

    Shape:
        - samples: ``(S, B, ..., C)`` logits (``from_logits=True``) or probabilities.
        - output: ``(B, ...)``.
    """
    return _one(samples, from_logits, "expected_entropy")


def mutual_information(samples: torch.Tensor, *, from_logits: bool) -> torch.Tensor:
    r"""Mutual information between prediction and weights (epistemic uncertainty, BALD).

    .. math:: \mathbb{I} = \mathbb{H}[\bar p] - \mathbb{E}_s \mathbb{H}[p_s]

    Non-negative by Jensen's inequality; tiny negative round-off is clamped to 0. It is 0
    when all samples agree and at most ``predictive_entropy <= log C``.

    Shape:
        - samples: ``(S, B, ..., C)`` logits (``from_logits=True``) or probabilities.
        - output: ``(B, ...)``.
    """
    return _one(samples, from_logits, "mutual_information")


def variation_ratio(samples: torch.Tensor, *, from_logits: bool) -> torch.Tensor:
    r"""Fraction of samples whose predicted class is not the modal one.

    .. math:: \mathrm{VR} = 1 - \frac{\max_c \#\{s : \arg\max_k p_{s,k} = c\}}{S}

    Lies in ``[0, 1 - 1/C]``. Ties inside one sample's argmax go to the lowest class index.

    Shape:
        - samples: ``(S, B, ..., C)`` logits (``from_logits=True``) or probabilities.
        - output: ``(B, ...)``.
    """
    return _one(samples, from_logits, "variation_ratio")


def class_std(samples: torch.Tensor, *, from_logits: bool) -> torch.Tensor:
    r"""Standard deviation over the samples of each class probability (population, /S).

    .. math:: \sigma_{b,c} = \sqrt{\frac{1}{S}\sum_s (p_{s,b,c} - \bar p_{b,c})^2}

    Shape:
        - samples: ``(S, B, ..., C)`` logits (``from_logits=True``) or probabilities.
        - output: ``(B, ..., C)``.
    """
    return _one(samples, from_logits, "class_std")


def classification_measures(samples: torch.Tensor, *, from_logits: bool
                            ) -> dict[str, torch.Tensor]:
    """All six measures above in one pass over the samples (cheaper than six calls).

    Returns a dict with keys ``mean`` (`predictive_probs`), ``predictive_entropy``,
    ``expected_entropy``, ``mutual_information``, ``variation_ratio``, ``class_std``, each
    equal to its function's result.

    Shape:
        - samples: ``(S, B, ..., C)`` logits (``from_logits=True``) or probabilities.
    """
    names = ("mean", "predictive_entropy", "expected_entropy", "mutual_information",
             "variation_ratio", "class_std")
    return _class_stream(samples, from_logits, *names).measures()


def token_measures(samples: torch.Tensor, *, from_logits: bool,
                   mask: torch.Tensor | None = None) -> TokenUncertainty:
    r"""Token-level uncertainty of language-model or token-classifier samples.

    Per token: predictive entropy, expected entropy and mutual information, as the functions
    above define them over the vocabulary (class) dim. Per sequence:
    ``result.sequence(measure, reduce)`` with ``reduce`` in ``"mean"`` (over real tokens),
    ``"sum"``, ``"max"``; positions where ``mask`` is 0 never change a sequence's value.
    For S too large to keep, feed chunks to
    ``dropkit.measures.ClassificationStream(from_logits=..., mask=mask)`` and call its
    ``token_measures()``: memory is that of one chunk.

    Shape:
        - samples: ``(S, B, T, V)`` logits (``from_logits=True``) or probabilities.
        - mask: ``(B, T)`` of 0/1 (bool or integer), at least one 1 per row; None: no padding.
        - output: a `TokenUncertainty` with ``(B, T)`` fields; ``sequence(...)`` is ``(B,)``.
    """
    stream = _class_stream(samples, from_logits, "mutual_information", mask=mask)
    return stream.token_measures()


# ----------------------------------------------------------------------------------------------
# regression
# ----------------------------------------------------------------------------------------------


def _regression_stream(means: object, *, log_var: object = None, tau: object = None,
                       target: object = None, required: bool = False) -> RegressionStream:
    one_noise_model(tau, log_var, required=required)
    stream = RegressionStream(tau=tau, target=target)  # type: ignore[arg-type]
    stream.update(means, log_var)  # type: ignore[arg-type]
    return stream


def predictive_mean(means: torch.Tensor) -> torch.Tensor:
    r"""Mean of the sampled regression means.

    .. math:: \hat\mu_b = \frac{1}{S}\sum_s \mu_{s,b}

    Shape:
        - means: ``(S, B)`` or ``(S, B, D)``.
        - output: ``(B,)`` or ``(B, D)``.
    """
    return _regression_stream(means).measures()["mean"]  # type: ignore[return-value]


def epistemic_variance(means: torch.Tensor) -> torch.Tensor:
    r"""Variance over the samples of the sampled means (population, /S).

    .. math:: \sigma^2_{\mathrm{epi}} = \frac{1}{S}\sum_s (\mu_s - \hat\mu)^2

    Shape:
        - means: ``(S, B)`` or ``(S, B, D)``.
        - output: ``(B,)`` or ``(B, D)``.
    """
    return _regression_stream(means).measures()["epistemic_variance"]  # type: ignore[return-value]


def aleatoric_variance(
    means: torch.Tensor, *, log_var: torch.Tensor | None = None, tau: float | None = None
) -> torch.Tensor:
    r"""Aleatoric (data noise) variance.

    .. math:: \sigma^2_{\mathrm{ale}} = \frac{1}{S}\sum_s \exp(\log\sigma^2_s)
              \quad\text{or}\quad \frac{1}{\tau}

    With neither ``log_var`` nor ``tau`` the model states no noise and the result is zeros
    (so that ``total_variance`` reduces to the epistemic part). Giving both is an error.

    Shape:
        - means: ``(S, B)`` or ``(S, B, D)``.
        - log_var: same shape as ``means`` (optional).
        - output: ``(B,)`` or ``(B, D)``.
    """
    stream = _regression_stream(means, log_var=log_var, tau=tau)
    return stream.measures()["aleatoric_variance"]  # type: ignore[return-value]


def total_variance(
    means: torch.Tensor, *, log_var: torch.Tensor | None = None, tau: float | None = None
) -> torch.Tensor:
    r"""Total predictive variance, the law of total variance for the MC mixture.

    .. math:: \sigma^2 = \sigma^2_{\mathrm{epi}} + \sigma^2_{\mathrm{ale}}

    See :func:`epistemic_variance` and :func:`aleatoric_variance` (zeros aleatoric part when
    neither ``log_var`` nor ``tau`` is given).

    Shape:
        - means: ``(S, B)`` or ``(S, B, D)``.
        - log_var: same shape as ``means`` (optional).
        - output: ``(B,)`` or ``(B, D)``.
    """
    stream = _regression_stream(means, log_var=log_var, tau=tau)
    return stream.measures()["total_variance"]  # type: ignore[return-value]


def gaussian_mixture_log_likelihood(
    means: torch.Tensor,
    target: torch.Tensor,
    *,
    tau: float | None = None,
    log_var: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Log-likelihood of ``target`` under the equal-weight mixture of the S sampled Gaussians.

    .. math:: \log p(y) = \operatorname{logsumexp}_s\Big[-\frac{(y-\mu_s)^2}{2\sigma^2_s}
              - \tfrac12\log(2\pi\sigma^2_s)\Big] - \log S

    with ``sigma_s^2 = exp(log_var_s)`` or ``1 / tau``. With ``tau`` this is the formula of
    Gal & Ghahramani (2016) for the UCI benchmarks:
    ``logsumexp_t(-tau/2 (y - y_t)^2) - log T - 1/2 log 2 pi + 1/2 log tau``.
    Exactly one of ``tau`` and ``log_var`` must be given. Multi-output targets ``(B, D)`` get
    one log-likelihood per dimension (sum over D for the joint of independent outputs).
    Computed in float64 by `dropkit.measures.likelihood` (finite for any finite float32
    ``log_var``, e.g. -100).

    Shape:
        - means: ``(S, B)`` or ``(S, B, D)``.
        - target: ``(B,)`` or ``(B, D)`` (like ``means[0]``).
        - log_var: same shape as ``means`` (optional).
        - output: ``(B,)`` or ``(B, D)``.
    """
    stream = _regression_stream(regression_means("means", means), log_var=log_var, tau=tau,
                                target=target, required=True)
    return stream.measures()["target_log_likelihood"]  # type: ignore[return-value]
