"""Streaming statistics: uncertainty measures from chunks of samples, in one chunk of memory.

Each accumulator takes chunks ``(c, B, ...)`` in turn and keeps only per-input sums (float64),
so S = 10,000 samples need the memory of one chunk. The results equal the measures of
`dropkit.uncertainty` on all the samples at once, to float tolerance:

* classification: running mean of the probabilities, of the per-sample entropy, the class
  variances (Chan et al.'s pairwise merge of Welford's sums) and the argmax votes;
* regression: Welford mean and variance of the sampled means, the mean of ``exp(log_var)``, and
  the mixture log-likelihood of given targets as a running ``logaddexp``.

Both also estimate the standard error of their estimates, for ``samples="auto"``.
"""

from __future__ import annotations

import math

import torch


def _merge(n: int, mean: torch.Tensor | None, m2: torch.Tensor | None, chunk: torch.Tensor
           ) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Welford/Chan merge of a chunk ``(c, ...)`` into (count, mean, sum of squared deviations)."""
    c = chunk.shape[0]
    cm = chunk.mean(dim=0)
    cm2 = ((chunk - cm) ** 2).sum(dim=0)
    if mean is None or m2 is None:
        return c, cm, cm2
    total = n + c
    delta = cm - mean
    return total, mean + delta * (c / total), m2 + cm2 + delta ** 2 * (n * c / total)


class ClassificationStream:
    """Accumulates class samples ``(c, B, C)`` (logits or probabilities)."""

    def __init__(self, *, from_logits: bool) -> None:
        self.from_logits = from_logits
        self.n = 0
        self.dtype = torch.float32
        self.p_mean: torch.Tensor | None = None
        self.p_m2: torch.Tensor | None = None
        self.h_sum: torch.Tensor | None = None
        self.votes: torch.Tensor | None = None
        self.g0: torch.Tensor | None = None  # gradient of H at the first chunk's mean (delta)
        self.z: tuple[int, torch.Tensor | None, torch.Tensor | None] = (0, None, None)

    def update(self, chunk: torch.Tensor) -> None:
        """Add samples ``(c, B, C)``."""
        self.dtype = chunk.dtype if chunk.dtype == torch.float64 else torch.float32
        x = chunk.double()
        logp = torch.log_softmax(x, -1) if self.from_logits else x.log()
        p = logp.exp() if self.from_logits else x
        h = -torch.special.xlogy(p, p).sum(-1) if not self.from_logits else -(p * logp).sum(-1)
        self.n, self.p_mean, self.p_m2 = _merge(self.n, self.p_mean, self.p_m2, p)
        self.h_sum = h.sum(0) if self.h_sum is None else self.h_sum + h.sum(0)
        one_hot = torch.nn.functional.one_hot(x.argmax(-1), x.shape[-1]).sum(0)
        self.votes = one_hot if self.votes is None else self.votes + one_hot
        if self.g0 is None:
            self.g0 = -(self.p_mean.clamp_min(1e-12).log() + 1.0)
        # MI is linearised as mean_s(g0 . p_s - H_s) + const; its spread gives MI's error.
        zn, zmean, zm2 = _merge(self.z[0], self.z[1], self.z[2], (p * self.g0).sum(-1) - h)
        self.z = (zn, zmean, zm2)

    def probs(self) -> torch.Tensor:
        assert self.p_mean is not None
        return self.p_mean

    def mean_se(self) -> torch.Tensor:
        """Standard error of each predictive probability ``(B, C)``: ``std_s(p) / sqrt(S)``."""
        assert self.p_m2 is not None
        return (self.p_m2 / max(self.n - 1, 1) / self.n).sqrt()

    def mi_se(self) -> torch.Tensor:
        """Delta-method standard error of the mutual information ``(B,)``."""
        zn, _, zm2 = self.z
        assert zm2 is not None
        return (zm2 / max(zn - 1, 1) / zn).sqrt()

    def measures(self) -> dict[str, torch.Tensor]:
        """The `Prediction` fields, as `dropkit.uncertainty` defines them."""
        assert self.p_mean is not None and self.p_m2 is not None and self.h_sum is not None
        assert self.votes is not None
        pbar = self.p_mean
        pred_h = -torch.special.xlogy(pbar, pbar).sum(-1)
        exp_h = self.h_sum / self.n
        out = {
            "mean": pbar, "predictive_entropy": pred_h, "expected_entropy": exp_h,
            "mutual_information": (pred_h - exp_h).clamp_min(0.0),
            "variation_ratio": 1.0 - self.votes.max(-1).values.double() / self.n,
            "class_std": (self.p_m2 / self.n).clamp_min(0.0).sqrt(),
        }
        return {k: v.to(self.dtype) for k, v in out.items()}


class RegressionStream:
    """Accumulates sampled means ``(c, B, ...)`` and optional log-variances or a precision."""

    def __init__(self, *, tau: float | None, target: torch.Tensor | None = None) -> None:
        self.tau = tau
        self.target = target
        self.n = 0
        self.dtype = torch.float32
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None
        self.var_sum: torch.Tensor | None = None  # sum of exp(log_var)
        self.lse: torch.Tensor | None = None  # logsumexp of the mixture components so far

    def update(self, means: torch.Tensor, log_var: torch.Tensor | None = None) -> None:
        """Add sampled means ``(c, B, ...)`` (and their log-variances, same shape)."""
        self.dtype = means.dtype if means.dtype == torch.float64 else torch.float32
        m = means.double()
        self.n, self.mean, self.m2 = _merge(self.n, self.mean, self.m2, m)
        if log_var is not None:
            v = log_var.double().exp().sum(0)
            self.var_sum = v if self.var_sum is None else self.var_sum + v
        if self.target is not None:
            sq = (self.target.double().unsqueeze(0) - m) ** 2
            if log_var is not None:
                lv = log_var.double()
                comp = -0.5 * sq * torch.exp(-lv) - 0.5 * (math.log(2 * math.pi) + lv)
            elif self.tau is not None:
                comp = -0.5 * self.tau * sq - 0.5 * math.log(2 * math.pi) + 0.5 * math.log(
                    self.tau)
            else:
                comp = None
            if comp is not None:
                part = torch.logsumexp(comp, 0)
                self.lse = part if self.lse is None else torch.logaddexp(self.lse, part)

    def mean_se(self) -> torch.Tensor:
        """Standard error of the predictive mean: ``std_s(mu) / sqrt(S)``."""
        assert self.m2 is not None
        return (self.m2 / max(self.n - 1, 1) / self.n).sqrt()

    def measures(self) -> dict[str, torch.Tensor | None]:
        assert self.mean is not None and self.m2 is not None
        epi = self.m2 / self.n
        if self.var_sum is not None:
            ale = self.var_sum / self.n
        else:
            ale = torch.full_like(epi, 0.0 if self.tau is None else 1.0 / self.tau)
        ll = None if self.lse is None else (self.lse - math.log(self.n)).to(self.dtype)
        return {"mean": self.mean.to(self.dtype), "epistemic_variance": epi.to(self.dtype),
                "aleatoric_variance": ale.to(self.dtype),
                "total_variance": (epi + ale).to(self.dtype), "target_log_likelihood": ll}
