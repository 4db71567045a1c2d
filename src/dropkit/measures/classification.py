"""`ClassificationStream`: every classification uncertainty measure, accumulated chunk by chunk.

This is the source of the classification measures: `dropkit.uncertainty`'s pure functions are
the one-chunk case (they validate through the same layer and add all their samples at once).
Samples are ``(c, B, ..., C)`` with the class dim last, e.g. ``(c, B, C)`` for a classifier or
``(c, B, T, V)`` for a language model. The state is a few float64 tensors of one sample's shape
(running mean and squared deviations of the probabilities, the summed per-sample entropy, the
argmax votes), and each chunk is processed in slices of at most ``_SLICE_ELEMENTS`` values (at
least one sample), so memory never grows with the number of samples.
"""

from __future__ import annotations

import torch

from dropkit._validate import _describe
from dropkit.errors import DropkitError, DropkitValueError, expected
from dropkit.measures._checks import check_from_logits, check_mask, class_samples, result_dtype
from dropkit.measures._welford import merge, merge_mean
from dropkit.measures.tokens import TokenUncertainty

_NEEDS = {
    "mean": {"p"}, "predictive_entropy": {"p"}, "expected_entropy": {"h"},
    "mutual_information": {"p", "h"}, "variation_ratio": {"votes"}, "class_std": {"p", "m2"},
}
"""The running statistics each measure is computed from (a stream keeps all, plus "z")."""

_SLICE_ELEMENTS = 1 << 20
"""Float64 values per slice of a chunk: each temporary of a slice is at most 8 MiB."""


def _slices(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    per_sample = max(1, x[0].numel())
    return torch.split(x, max(1, _SLICE_ELEMENTS // per_sample), dim=0)


def _entropy_terms(x: torch.Tensor, from_logits: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities ``(k, B, ..., C)`` and per-sample entropies ``(k, B, ...)``, in float64.

    Softmax in float64 is exact enough for any finite float32 logit (even +-3e38), and
    ``entr(p) = -p log p`` is exactly 0 where a probability underflows to 0 (never
    ``0 * -inf``).
    """
    x = x.double()
    p = torch.softmax(x, dim=-1) if from_logits else x.clamp(0.0, 1.0)
    return p, torch.special.entr(p).sum(dim=-1)


class ClassificationStream:
    """Accumulates class samples ``(c, B, ..., C)`` (logits or probabilities, class dim last).

    Args:
        from_logits: True for logits, False for probabilities (checked: in [0, 1], summing
            to 1 over the class dim).
        mask: optional attention mask ``(B, T, ...)`` of 0/1 for token outputs
            ``(c, B, T, ..., V)``: padded positions (0) are left out of the per-sequence
            aggregates of `token_measures`.

    `measures` equals the functions of `dropkit.uncertainty` on all the samples at once.
    """

    def __init__(self, *, from_logits: bool, mask: torch.Tensor | None = None) -> None:
        self.from_logits = check_from_logits(from_logits)
        self.mask = None if mask is None else check_mask(mask)
        self.n = 0
        self.dtype = torch.float32
        self.shape: torch.Size | None = None  # one sample's shape (B, ..., C)
        self.p_mean: torch.Tensor | None = None
        self.p_m2: torch.Tensor | None = None
        self.h_sum: torch.Tensor | None = None
        self.votes: torch.Tensor | None = None
        self.g0: torch.Tensor | None = None  # gradient of H at the first slice's mean (delta)
        self.z: tuple[int, torch.Tensor | None, torch.Tensor | None] = (0, None, None)
        self._stats = {"p", "m2", "h", "votes", "z"}  # the pure functions keep fewer

    def update(self, chunk: torch.Tensor) -> None:
        """Add samples ``(c, B, ..., C)``."""
        self._update(chunk, "chunk")

    def _update(self, chunk: object, name: str) -> None:
        # detached: a graph kept across chunks would grow with S (the measures are statistics)
        x = class_samples(name, chunk, self.from_logits).detach()
        self._check_shape(name, x)
        self.dtype = result_dtype(x.dtype)
        for part in _slices(x):
            self._add(part)

    def _check_shape(self, name: str, x: torch.Tensor) -> None:
        if self.shape is None:
            if self.mask is not None and tuple(self.mask.shape) != tuple(x.shape[1:-1]):
                raise DropkitValueError(expected(
                    "mask", f"a tensor of shape {tuple(x.shape[1:-1])} (the (B, T) of "
                            f"`{name}` (S, B, T, V))", _describe(self.mask)))
            self.shape = x.shape[1:]
        elif x.shape[1:] != self.shape:
            raise DropkitValueError(expected(
                name, f"samples of shape (c, {', '.join(map(str, self.shape))}) like the "
                      "earlier chunks", _describe(x)))

    def _keep_only(self, names: tuple[str, ...]) -> None:
        """Track only what ``names`` (keys of `measures`) need: one measure, one pass."""
        self._stats = set().union(*(_NEEDS[name] for name in names))

    def _add(self, x: torch.Tensor) -> None:
        stats, k = self._stats, x.shape[0]
        if stats & {"p", "h"}:
            p, h = _entropy_terms(x, self.from_logits)
            if "m2" in stats:
                _, self.p_mean, self.p_m2 = merge(self.n, self.p_mean, self.p_m2, p)
            elif "p" in stats:
                self.p_mean = merge_mean(self.n, self.p_mean, p)
            if "h" in stats:
                self.h_sum = h.sum(0) if self.h_sum is None else self.h_sum + h.sum(0)
        if "votes" in stats:
            if self.votes is None:
                self.votes = torch.zeros(x.shape[1:], dtype=torch.int64, device=x.device)
            top = x.argmax(dim=-1).movedim(0, -1)  # (k, B, ...) -> (B, ..., k)
            self.votes.scatter_add_(-1, top, torch.ones_like(top))
        self.n += k
        if "z" in stats:
            assert self.p_mean is not None
            if self.g0 is None:
                self.g0 = -(self.p_mean.clamp_min(1e-12).log() + 1.0)
            # MI is linearised as mean_s(g0 . p_s - H_s) + const; its spread gives its error.
            zn, zmean, zm2 = merge(self.z[0], self.z[1], self.z[2], (p * self.g0).sum(-1) - h)
            self.z = (zn, zmean, zm2)

    def _need(self) -> None:
        if self.n == 0:
            raise DropkitError("ClassificationStream: no samples yet (call update() first).")

    def probs(self) -> torch.Tensor:
        """The mean predictive distribution ``(B, ..., C)`` in float64."""
        self._need()
        if self.p_mean is None:
            raise DropkitError("ClassificationStream: the mean was not tracked.")
        return self.p_mean

    def mean_se(self) -> torch.Tensor:
        """Standard error of each predictive probability ``(B, ..., C)``: ``std_s(p)/sqrt(S)``."""
        self._need()
        if self.p_m2 is None:
            raise DropkitError("ClassificationStream: the squared deviations were not tracked.")
        return (self.p_m2 / max(self.n - 1, 1) / self.n).sqrt()

    def mi_se(self) -> torch.Tensor:
        """Delta-method standard error of the mutual information ``(B, ...)``."""
        self._need()
        zn, _, zm2 = self.z
        if zm2 is None:
            raise DropkitError("ClassificationStream: the MI standard error was not tracked.")
        return (zm2 / max(zn - 1, 1) / zn).sqrt()

    def measures(self) -> dict[str, torch.Tensor]:
        """The `Prediction` fields, as `dropkit.uncertainty` defines them."""
        self._need()
        out: dict[str, torch.Tensor] = {}
        if self.p_mean is not None:
            out["mean"] = self.p_mean
            out["predictive_entropy"] = torch.special.entr(self.p_mean).sum(-1)
        if self.h_sum is not None:
            out["expected_entropy"] = self.h_sum / self.n
        if "predictive_entropy" in out and "expected_entropy" in out:
            mi = out["predictive_entropy"] - out["expected_entropy"]
            out["mutual_information"] = mi.clamp_min(0.0)  # Jensen: >= 0 up to round-off
        if self.votes is not None:
            out["variation_ratio"] = 1.0 - self.votes.max(-1).values.double() / self.n
        if self.p_m2 is not None:
            out["class_std"] = (self.p_m2 / self.n).clamp_min(0.0).sqrt()
        return {k: v.to(self.dtype) for k, v in out.items()}

    def token_measures(self) -> TokenUncertainty:
        """Per-token entropy, expected entropy and MI ``(B, T)`` with the stream's mask."""
        m = self.measures()
        assert self.shape is not None
        if len(self.shape) < 3:
            raise DropkitValueError(expected(
                "chunk", "token samples (c, B, T, V) for token measures",
                f"samples of shape (c, {', '.join(map(str, self.shape))})"))
        return TokenUncertainty(predictive_entropy=m["predictive_entropy"],
                                expected_entropy=m["expected_entropy"],
                                mutual_information=m["mutual_information"], mask=self.mask)
