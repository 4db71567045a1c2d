"""`RegressionStream`: the regression uncertainty measures, accumulated chunk by chunk.

The source of `dropkit.uncertainty`'s regression functions (they are its one-chunk case):
Welford mean and variance of the sampled means, the mean of ``exp(log_var)``, and the mixture
log-likelihood of given targets (`dropkit.measures.likelihood`), all in float64.
"""

from __future__ import annotations

import torch

from dropkit._validate import _describe
from dropkit.errors import DropkitError, DropkitValueError, expected
from dropkit.measures._checks import (
    check_tau,
    finite_float,
    one_noise_model,
    regression_means,
    result_dtype,
    same_shape,
)
from dropkit.measures._welford import merge
from dropkit.measures.likelihood import MixtureLogLikelihood


class RegressionStream:
    """Accumulates sampled means ``(c, B, ...)`` and optional log-variances or a precision.

    Args:
        tau: homoscedastic noise precision (aleatoric variance ``1 / tau``), or None.
        target: optional targets ``(B, ...)`` (one sample's shape): their mixture
            log-likelihood is accumulated too (needs ``tau`` or log-variances).
    """

    def __init__(self, *, tau: float | None, target: torch.Tensor | None = None) -> None:
        self.tau = None if tau is None else check_tau(tau)
        self.target = None if target is None else finite_float("target", target).detach()
        self.n = 0
        self.dtype = torch.float32
        self.shape: torch.Size | None = None  # one sample's shape (B, ...)
        self.has_log_var: bool | None = None
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None
        self.var_sum: torch.Tensor | None = None  # sum of exp(log_var)
        self.ll: MixtureLogLikelihood | None = None

    def update(self, means: torch.Tensor, log_var: torch.Tensor | None = None) -> None:
        """Add sampled means ``(c, B, ...)`` (and their log-variances, same shape)."""
        m = regression_means("means", means).detach()  # statistics: no graph across chunks
        lv = None
        if log_var is not None:
            lv = same_shape("log_var", finite_float("log_var", log_var), m.shape, "means")
            lv = lv.detach()
        one_noise_model(self.tau, lv, required=False)
        self._check_consistent(m, lv)
        self.dtype = result_dtype(m.dtype)
        m64 = m.double()
        self.n, self.mean, self.m2 = merge(self.n, self.mean, self.m2, m64)
        lv64 = None if lv is None else lv.double()
        if lv64 is not None:
            v = lv64.exp().sum(0)
            self.var_sum = v if self.var_sum is None else self.var_sum + v
        if self.target is not None and (lv64 is not None or self.tau is not None):
            if self.ll is None:
                self.ll = MixtureLogLikelihood()
            resid = self.target.double().unsqueeze(0) - m64  # (c, B, ...), a fresh temporary
            self.ll.add(resid, tau=self.tau, log_var=lv64)

    def _check_consistent(self, m: torch.Tensor, lv: torch.Tensor | None) -> None:
        if self.shape is None:
            if self.target is not None:
                same_shape("target", self.target, m.shape[1:], "means[0]")
            self.shape, self.has_log_var = m.shape[1:], lv is not None
            return
        if m.shape[1:] != self.shape:
            raise DropkitValueError(expected(
                "means", f"samples of shape (c, {', '.join(map(str, self.shape))}) like the "
                         "earlier chunks", _describe(m)))
        if (lv is not None) != self.has_log_var:
            raise DropkitValueError(expected(
                "log_var", "given for every chunk or for none",
                "None" if lv is None else "a tensor after chunks without one"))

    def _need(self) -> None:
        if self.n == 0:
            raise DropkitError("RegressionStream: no samples yet (call update() first).")

    def mean_se(self) -> torch.Tensor:
        """Standard error of the predictive mean: ``std_s(mu) / sqrt(S)``."""
        self._need()
        assert self.m2 is not None
        return (self.m2 / max(self.n - 1, 1) / self.n).sqrt()

    def log_likelihood(self) -> torch.Tensor | None:
        """Mixture log-likelihood of the targets (float64), None without targets or noise."""
        self._need()
        return None if self.ll is None else self.ll.compute(tau=self.tau)

    def measures(self) -> dict[str, torch.Tensor | None]:
        self._need()
        assert self.mean is not None and self.m2 is not None
        epi = self.m2 / self.n
        if self.var_sum is not None:
            ale = self.var_sum / self.n
        else:
            ale = torch.full_like(epi, 0.0 if self.tau is None else 1.0 / self.tau)
        ll = self.log_likelihood()
        return {"mean": self.mean.to(self.dtype), "epistemic_variance": epi.to(self.dtype),
                "aleatoric_variance": ale.to(self.dtype),
                "total_variance": (epi + ale).to(self.dtype),
                "target_log_likelihood": None if ll is None else ll.to(self.dtype)}
