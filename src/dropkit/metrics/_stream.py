"""The one base of the streaming metric objects that are means of per-row values."""

from __future__ import annotations

import torch

from dropkit.errors import DropkitError


class RowMean:
    """Running mean of per-row values: subclasses call ``_add(rows)`` from ``update``.

    The rows come from the same private function as the metric's pure twin, so ``compute()``
    equals the function on the concatenated batches (up to float64 summation order).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> RowMean:
        self._sum = 0.0
        self._count = 0
        return self

    def _add(self, rows: torch.Tensor) -> RowMean:
        self._sum += float(rows.double().sum())
        self._count += rows.numel()
        return self

    def _finish(self, mean: float) -> float:
        return mean

    def compute(self) -> float:
        if self._count == 0:
            raise DropkitError(f"{type(self).__name__}.compute() called before any update().")
        return self._finish(self._sum / self._count)
