"""Token-level uncertainty: per-token measures ``(B, T)`` and per-sequence aggregates ``(B,)``.

Language models and token classifiers give MC samples ``(S, B, T, V)``; the classification
measures apply per position (class dim last). A sequence's uncertainty is then the mean, sum
or max over its real tokens: padded positions (0 in the attention mask) are left out, so
whatever the model outputs there cannot change a sequence aggregate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dropkit._validate import _describe, check_choice
from dropkit.errors import DropkitValueError, expected

MEASURES = ("predictive_entropy", "expected_entropy", "mutual_information")
REDUCTIONS = ("mean", "sum", "max")


def sequence_reduce(values: torch.Tensor, mask: torch.Tensor | None, reduce: str) -> torch.Tensor:
    """Reduce per-token ``values (B, T, ...)`` to ``(B,)`` over the real positions of ``mask``.

    ``mask`` is a validated bool tensor of ``values``' shape, or None (every position real).
    Computed in float64, returned in ``values``' dtype.
    """
    reduce = check_choice("reduce", reduce, REDUCTIONS)
    v = values.double().reshape(values.shape[0], -1)  # (B, T, ...) -> (B, T*...)
    if mask is None:
        m = torch.ones_like(v, dtype=torch.bool)
    else:
        if tuple(mask.shape) != tuple(values.shape):
            raise DropkitValueError(expected("mask", f"a tensor of shape {tuple(values.shape)}",
                                             _describe(mask)))
        m = mask.reshape(v.shape)
    if reduce == "max":
        out = torch.where(m, v, -torch.inf).amax(dim=1)
    else:
        out = torch.where(m, v, 0.0).sum(dim=1)
        if reduce == "mean":
            out = out / m.sum(dim=1)  # >= 1 real token per row: checked with the mask
    return out.to(values.dtype)


@dataclass(frozen=True)
class TokenUncertainty:
    """Per-token measures ``(B, T)`` (nats) and the mask of real tokens ``(B, T)`` or None.

    Padded positions keep whatever the model gave there in the per-token tensors; use
    `sequence` (or `mask`) to leave them out.
    """

    predictive_entropy: torch.Tensor
    expected_entropy: torch.Tensor
    mutual_information: torch.Tensor
    mask: torch.Tensor | None = None

    def sequence(self, measure: str = "mutual_information", reduce: str = "mean"
                 ) -> torch.Tensor:
        """One number per sequence ``(B,)``: ``reduce`` ("mean", "sum" or "max") of
        ``measure`` ("predictive_entropy", "expected_entropy" or "mutual_information") over
        the real tokens."""
        measure = check_choice("measure", measure, MEASURES)
        return sequence_reduce(getattr(self, measure), self.mask, reduce)
