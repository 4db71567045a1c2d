r"""The Gaussian-mixture log-likelihood of MC regression samples, written once.

For S sampled means ``mu_s`` and noise variances ``sigma_s^2`` (``exp(log_var_s)`` or
``1 / tau``), the log-likelihood of a target under the equal-weight mixture is

.. math:: \log p(y) = \operatorname{logsumexp}_s\Big[-\frac{(y-\mu_s)^2}{2\sigma^2_s}
          - \tfrac12\log\sigma^2_s\Big] - \log S - \tfrac12\log 2\pi

(with ``tau`` the ``log sigma^2`` term is the constant ``-log tau`` and moves out of the
logsumexp: Gal & Ghahramani's UCI formula). `MixtureLogLikelihood` takes the samples chunk by
chunk as a running ``logaddexp`` of per-chunk logsumexps, so any S needs one chunk of memory.
`dropkit.uncertainty.gaussian_mixture_log_likelihood`, `RegressionStream` and the UCI
benchmark's MC evaluation all reduce with it.
"""

from __future__ import annotations

import math

import torch

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _log(x: torch.Tensor | float) -> torch.Tensor | float:
    return torch.log(x) if isinstance(x, torch.Tensor) else math.log(x)


def log_kernel(resid: torch.Tensor, *, tau: torch.Tensor | float | None = None,
               log_var: torch.Tensor | None = None) -> torch.Tensor:
    r"""The per-sample terms inside the logsumexp, from residuals ``y - mu_s``.

    ``-tau/2 r^2`` (computed in place: ``resid`` is overwritten, it is a temporary in every
    caller) or ``-(r^2 exp(-log_var) + log_var) / 2``. The latter is evaluated as
    ``exp(2 log|r| - log_var)`` so that a tiny variance cannot overflow ``exp(-log_var)``
    into ``0 * inf = NaN`` (a zero residual gives exactly 0).
    """
    if log_var is not None:
        scaled = torch.exp(2.0 * resid.abs().log_() - log_var)  # r^2 / sigma^2
        return scaled.add_(log_var).mul_(-0.5)
    if tau is None:
        raise ValueError("log_kernel needs tau or log_var")  # internal misuse, never user input
    return resid.square_().mul_(-0.5 * tau)


class MixtureLogLikelihood:
    """Running mixture log-likelihood over chunks of samples along dimension ``dim``."""

    def __init__(self, *, dim: int = 0) -> None:
        self.dim = dim
        self.n = 0
        self.lse: torch.Tensor | None = None  # float64 logsumexp of the terms so far

    def add(self, resid: torch.Tensor, *, tau: torch.Tensor | float | None = None,
            log_var: torch.Tensor | None = None) -> None:
        """Add residuals ``y - mu_s`` of a chunk (overwritten), with ``tau`` or ``log_var``.

        The logsumexp of the chunk is taken in ``resid``'s dtype and accumulated in float64.
        """
        n = resid.shape[self.dim]
        part = torch.logsumexp(log_kernel(resid, tau=tau, log_var=log_var), dim=self.dim)
        part = part.double()
        self.lse = part if self.lse is None else torch.logaddexp(self.lse, part)
        self.n += n

    def compute(self, *, tau: torch.Tensor | float | None = None) -> torch.Tensor:
        """The log-likelihood (float64); pass ``tau`` again if the terms were added with it."""
        if self.lse is None:
            raise ValueError("MixtureLogLikelihood.compute() before add()")  # internal misuse
        ll = self.lse - math.log(self.n) - _HALF_LOG_2PI
        return ll if tau is None else ll + 0.5 * _log(tau)
