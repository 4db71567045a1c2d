"""Uncertainty measures from Monte Carlo samples (pure functions, samples first).

Classification functions take ``samples`` shaped ``(S, B, C)`` (S stochastic forward passes,
B inputs, C classes) and a required keyword ``from_logits``: dropkit never guesses whether a
tensor holds logits or probabilities. From logits, everything is computed in log space
(``log_softmax`` / ``logsumexp``); from probabilities, ``0 * log 0`` is taken as 0.

Regression functions take ``means`` shaped ``(S, B)`` or ``(S, B, D)`` (any trailing dims are
allowed) and, for the aleatoric part, either a per-sample predicted log-variance ``log_var``
(heteroscedastic head, same shape as ``means``) or a homoscedastic model precision ``tau``
(aleatoric variance ``1 / tau``).

Half-precision inputs (float16, bfloat16) are computed and returned in float32; float32 and
float64 inputs keep their dtype.

Example:
    >>> import torch
    >>> agree = torch.tensor([[[0.9, 0.1]], [[0.9, 0.1]]])  # (S=2, B=1, C=2)
    >>> float(mutual_information(agree, from_logits=False))
    0.0
"""

from __future__ import annotations

import math

import torch

from dropkit._validate import _describe, check_samples
from dropkit.errors import DropkitTypeError, DropkitValueError, expected

__all__ = [
    "predictive_probs",
    "predictive_entropy",
    "expected_entropy",
    "mutual_information",
    "variation_ratio",
    "class_std",
    "predictive_mean",
    "epistemic_variance",
    "aleatoric_variance",
    "total_variance",
    "gaussian_mixture_log_likelihood",
]


# ----------------------------------------------------------------------------------------------
# private helpers
# ----------------------------------------------------------------------------------------------


def _check_from_logits(from_logits: object) -> bool:
    if not isinstance(from_logits, bool):
        raise DropkitTypeError(
            expected("from_logits", "a bool (True for logits, False for probabilities)",
                     repr(from_logits))
        )
    return from_logits


def _working_dtype(x: torch.Tensor) -> torch.Tensor:
    """Half precision is too coarse for logs of small probabilities: compute in float32."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x


def _probability_tolerance(dtype: torch.dtype) -> float:
    """Slack allowed on ``p in [0, 1]`` and ``sum_c p = 1``: 1e-4, more for coarse dtypes."""
    return max(1e-4, 10.0 * torch.finfo(dtype).eps)


def _check_probabilities(name: str, probs: torch.Tensor, *, dim: int = -1,
                         given_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``probs`` must lie in [0, 1] and sum to 1 along ``dim`` (within a dtype tolerance).

    ``given_dtype`` is the dtype the user passed (before any upcast); it sets the tolerance.
    Returns ``probs`` clamped to exactly [0, 1] so that round-off never yields a NaN log.
    """
    tol = _probability_tolerance(given_dtype or probs.dtype)
    lo, hi = float(probs.min()), float(probs.max())
    if lo < -tol or hi > 1.0 + tol:
        raise DropkitValueError(
            expected(name, "probabilities in [0, 1] (pass from_logits=True for logits)",
                     f"values in [{lo:.4g}, {hi:.4g}]")
        )
    sums = probs.sum(dim=dim, dtype=torch.float64)
    worst = float((sums - 1.0).abs().max())
    if worst > tol:
        raise DropkitValueError(
            expected(name, f"probabilities summing to 1 over the class dimension "
                           f"(tolerance {tol:.1g}; pass from_logits=True for logits)",
                     f"sums off by up to {worst:.4g}")
        )
    return probs.clamp(0.0, 1.0)


def _class_samples(samples: object, from_logits: object) -> tuple[torch.Tensor, bool]:
    """Validate ``(S, B, C)`` samples; return them in working dtype plus ``from_logits``."""
    from_logits = _check_from_logits(from_logits)
    samples = check_samples("samples", samples, ndim=3)
    if samples.shape[2] == 0:
        raise DropkitValueError(expected("samples", "a (S, B, C) tensor with C >= 1 classes",
                                         _describe(samples)))
    given_dtype = samples.dtype
    samples = _working_dtype(samples)
    if not from_logits:
        samples = _check_probabilities("samples", samples, dim=-1, given_dtype=given_dtype)
    return samples, from_logits


def _log_probs(samples: torch.Tensor, from_logits: bool) -> torch.Tensor:
    """Per-sample log-probabilities ``(S, B, C)``; -inf where a probability is exactly 0."""
    if from_logits:
        return torch.log_softmax(samples, dim=-1)
    return samples.log()


def _probs(samples: torch.Tensor, from_logits: bool) -> torch.Tensor:
    return torch.softmax(samples, dim=-1) if from_logits else samples


def _entropy_from_probs(p: torch.Tensor) -> torch.Tensor:
    """``-sum_c p_c log p_c`` over the last dim with ``0 log 0 = 0``."""
    return -torch.special.xlogy(p, p).sum(dim=-1)


def _mean_log_probs(samples: torch.Tensor, from_logits: bool) -> torch.Tensor:
    """``log p̄`` of the predictive distribution, ``(B, C)``, computed in log space."""
    s = samples.shape[0]
    return torch.logsumexp(_log_probs(samples, from_logits), dim=0) - math.log(s)


def _predictive_entropy(samples: torch.Tensor, from_logits: bool) -> torch.Tensor:
    if from_logits:
        log_pbar = _mean_log_probs(samples, from_logits)  # finite: logits are finite
        return -(log_pbar.exp() * log_pbar).sum(dim=-1)
    return _entropy_from_probs(samples.mean(dim=0))


def _expected_entropy(samples: torch.Tensor, from_logits: bool) -> torch.Tensor:
    if from_logits:
        logp = torch.log_softmax(samples, dim=-1)
        # exp(logp) may underflow to 0 while logp stays finite, so the product is never NaN.
        per_sample = -(logp.exp() * logp).sum(dim=-1)  # (S, B)
    else:
        per_sample = _entropy_from_probs(samples)  # (S, B)
    return per_sample.mean(dim=0)


# ----------------------------------------------------------------------------------------------
# classification
# ----------------------------------------------------------------------------------------------


def predictive_probs(samples: torch.Tensor, *, from_logits: bool) -> torch.Tensor:
    r"""Mean predictive distribution over the MC samples.

    .. math:: \bar p_{b,c} = \frac{1}{S} \sum_s \mathrm{softmax}(z_s)_{b,c}

    From logits it is computed as ``exp(logsumexp_s log_softmax(z_s) - log S)``.

    Shape:
        - samples: ``(S, B, C)`` logits (``from_logits=True``) or probabilities.
        - output: ``(B, C)``, rows summing to 1.
    """
    samples, from_logits = _class_samples(samples, from_logits)
    if from_logits:
        return _mean_log_probs(samples, from_logits).exp()
    return samples.mean(dim=0)


def predictive_entropy(samples: torch.Tensor, *, from_logits: bool) -> torch.Tensor:
    r"""Entropy of the mean predictive distribution (total uncertainty, in nats).

    .. math:: \mathbb{H}[\bar p] = -\sum_c \bar p_c \log \bar p_c,
              \quad \bar p = \frac{1}{S}\sum_s p_s

    Lies in ``[0, log C]``.

    Shape:
        - samples: ``(S, B, C)`` logits (``from_logits=True``) or probabilities.
        - output: ``(B,)``.
    """
    samples, from_logits = _class_samples(samples, from_logits)
    return _predictive_entropy(samples, from_logits)


def expected_entropy(samples: torch.Tensor, *, from_logits: bool) -> torch.Tensor:
    r"""Mean entropy of the per-sample distributions (aleatoric uncertainty, in nats).

    .. math:: \mathbb{E}_s \mathbb{H}[p_s] = -\frac{1}{S}\sum_s \sum_c p_{s,c} \log p_{s,c}

    Shape:
        - samples: ``(S, B, C)`` logits (``from_logits=True``) or probabilities.
        - output: ``(B,)``.
    """
    samples, from_logits = _class_samples(samples, from_logits)
    return _expected_entropy(samples, from_logits)


def mutual_information(samples: torch.Tensor, *, from_logits: bool) -> torch.Tensor:
    r"""Mutual information between prediction and weights (epistemic uncertainty, BALD).

    .. math:: \mathbb{I} = \mathbb{H}[\bar p] - \mathbb{E}_s \mathbb{H}[p_s]

    Non-negative by Jensen's inequality; tiny negative round-off is clamped to 0. It is 0
    when all samples agree and at most ``predictive_entropy <= log C``.

    Shape:
        - samples: ``(S, B, C)`` logits (``from_logits=True``) or probabilities.
        - output: ``(B,)``.
    """
    samples, from_logits = _class_samples(samples, from_logits)
    mi = _predictive_entropy(samples, from_logits) - _expected_entropy(samples, from_logits)
    return mi.clamp_min(0.0)


def variation_ratio(samples: torch.Tensor, *, from_logits: bool) -> torch.Tensor:
    r"""Fraction of samples whose predicted class is not the modal one.

    .. math:: \mathrm{VR} = 1 - \frac{\max_c \#\{s : \arg\max_k p_{s,k} = c\}}{S}

    Lies in ``[0, 1 - 1/C]``. Ties inside one sample's argmax go to the lowest class index.

    Shape:
        - samples: ``(S, B, C)`` logits (``from_logits=True``) or probabilities.
        - output: ``(B,)``.
    """
    samples, _ = _class_samples(samples, from_logits)
    s, _, c = samples.shape
    votes = samples.argmax(dim=-1)  # (S, B); argmax of logits == argmax of softmax
    counts = torch.nn.functional.one_hot(votes, num_classes=c).sum(dim=0)  # (B, C)
    modal = counts.max(dim=-1).values.to(samples.dtype)
    return 1.0 - modal / s


def class_std(samples: torch.Tensor, *, from_logits: bool) -> torch.Tensor:
    r"""Standard deviation over the samples of each class probability (population, /S).

    .. math:: \sigma_{b,c} = \sqrt{\frac{1}{S}\sum_s (p_{s,b,c} - \bar p_{b,c})^2}

    Shape:
        - samples: ``(S, B, C)`` logits (``from_logits=True``) or probabilities.
        - output: ``(B, C)``.
    """
    samples, from_logits = _class_samples(samples, from_logits)
    return _probs(samples, from_logits).std(dim=0, correction=0)


# ----------------------------------------------------------------------------------------------
# regression
# ----------------------------------------------------------------------------------------------


def _regression_means(means: object) -> torch.Tensor:
    return _working_dtype(check_samples("means", means, min_ndim=2))


def _like_means(name: str, x: object, means: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``x`` must be a finite floating tensor of exactly ``shape``."""
    if not isinstance(x, torch.Tensor):
        raise DropkitTypeError(expected(name, "a torch.Tensor", type(x).__name__))
    if tuple(x.shape) != tuple(shape):
        raise DropkitValueError(
            expected(name, f"a tensor of shape {tuple(shape)} (matching `means`)",
                     _describe(x))
        )
    if not x.is_floating_point():
        raise DropkitTypeError(expected(name, "a floating-point tensor", _describe(x)))
    if not bool(torch.isfinite(x).all()):
        n_nan, n_inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
        raise DropkitValueError(
            expected(name, "finite values", f"{n_nan} NaN and {n_inf} infinite entries")
        )
    return x.to(torch.promote_types(x.dtype, means.dtype))


def _check_tau(tau: object) -> float:
    if isinstance(tau, bool) or not isinstance(tau, (int, float)):
        raise DropkitTypeError(expected("tau", "a positive float (model precision)", repr(tau)))
    tau = float(tau)
    if not (math.isfinite(tau) and tau > 0.0):
        raise DropkitValueError(expected("tau", "a positive finite float (model precision)", tau))
    return tau


def _aleatoric_source(
    means: torch.Tensor, log_var: object, tau: object, *, required: bool
) -> tuple[torch.Tensor | None, float | None]:
    """Validate the (log_var, tau) pair: at most one (exactly one if ``required``)."""
    if log_var is not None and tau is not None:
        raise DropkitValueError(
            expected("tau", "None when `log_var` is given (pass exactly one of `tau`, `log_var`)",
                     repr(tau))
        )
    if required and log_var is None and tau is None:
        raise DropkitValueError(
            expected("tau", "a positive float when `log_var` is None (pass exactly one of "
                            "`tau`, `log_var`)", "None for both")
        )
    if log_var is not None:
        return _like_means("log_var", log_var, means, means.shape), None
    if tau is not None:
        return None, _check_tau(tau)
    return None, None


def predictive_mean(means: torch.Tensor) -> torch.Tensor:
    r"""Mean of the sampled regression means.

    .. math:: \hat\mu_b = \frac{1}{S}\sum_s \mu_{s,b}

    Shape:
        - means: ``(S, B)`` or ``(S, B, D)``.
        - output: ``(B,)`` or ``(B, D)``.
    """
    return _regression_means(means).mean(dim=0)


def epistemic_variance(means: torch.Tensor) -> torch.Tensor:
    r"""Variance over the samples of the sampled means (population, /S).

    .. math:: \sigma^2_{\mathrm{epi}} = \frac{1}{S}\sum_s (\mu_s - \hat\mu)^2

    Shape:
        - means: ``(S, B)`` or ``(S, B, D)``.
        - output: ``(B,)`` or ``(B, D)``.
    """
    return _regression_means(means).var(dim=0, correction=0)


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
    means = _regression_means(means)
    lv, t = _aleatoric_source(means, log_var, tau, required=False)
    if lv is not None:
        return lv.exp().mean(dim=0)
    fill = 0.0 if t is None else 1.0 / t
    return torch.full(means.shape[1:], fill, dtype=means.dtype, device=means.device)


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
    return epistemic_variance(means) + aleatoric_variance(means, log_var=log_var, tau=tau)


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

    Shape:
        - means: ``(S, B)`` or ``(S, B, D)``.
        - target: ``(B,)`` or ``(B, D)`` (like ``means[0]``).
        - log_var: same shape as ``means`` (optional).
        - output: ``(B,)`` or ``(B, D)``.
    """
    means = _regression_means(means)
    target = _like_means("target", target, means, means.shape[1:])
    lv, t = _aleatoric_source(means, log_var, tau, required=True)
    sq = (target.unsqueeze(0) - means) ** 2  # (S, B, ...)
    if lv is not None:
        log_comp = -0.5 * sq * torch.exp(-lv) - 0.5 * (math.log(2 * math.pi) + lv)
    else:
        assert t is not None  # guaranteed by _aleatoric_source(required=True)
        log_comp = -0.5 * t * sq - 0.5 * math.log(2 * math.pi) + 0.5 * math.log(t)
    return torch.logsumexp(log_comp, dim=0) - math.log(means.shape[0])
