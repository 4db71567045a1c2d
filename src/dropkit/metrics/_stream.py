"""The one base of the streaming metrics that are means of per-row values.

A ``torchmetrics.Metric``: its two states are sums (``dist_reduce_fx="sum"``), so under DDP
``compute()`` returns the mean over every process's rows, and ``self.log(name, metric)`` in
Lightning works as for any torchmetrics object. Imported only by ``streaming.py``, which the
package loads on first use (torchmetrics is the extra ``dropkit[metrics]``).
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric

from dropkit.errors import DropkitError


class RowMean(Metric):
    """Running mean of per-row values: subclasses call ``_add(rows)`` from ``update``.

    The rows come from the same private function as the metric's pure twin, so ``compute()``
    equals the function on the concatenated batches (up to float64 summation order).
    """

    is_differentiable = False
    full_state_update = False  # a batch's value needs only that batch (fast ``forward``)
    total: torch.Tensor
    count: torch.Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def _add(self, rows: torch.Tensor) -> None:
        self.total += rows.double().sum().to(self.total.device)
        self.count += rows.numel()

    def _finish(self, mean: torch.Tensor) -> torch.Tensor:
        return mean

    def compute(self) -> torch.Tensor:
        """The mean as a 0-d float64 tensor (over all processes under DDP)."""
        if int(self.count) == 0:
            raise DropkitError(f"{type(self).__name__}.compute() called before any update().")
        return self._finish(self.total / self.count)
