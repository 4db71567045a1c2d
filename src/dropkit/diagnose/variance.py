"""`variance_shift`: how far each BatchNorm's running variance is from what it sees at inference.

For a BatchNorm layer with running variance ``v_c`` (learned in training, with dropout active)
and inference-time input ``x`` (every module in eval mode, dropout off), the shift of channel
``c`` is the ratio

    r_c = v_c / Var_test[x_c],   Var_test[x_c] = sum_i (x_ic - mean_c)^2 / (n - 1)

over every element ``i`` of channel ``c`` in the data (batch and spatial positions). ``r_c = 1``
means BatchNorm normalizes with the right variance; dropout before BatchNorm makes ``r_c > 1``
(Li et al., CVPR 2019), so the layer shrinks its inputs at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from dropkit.diagnose._borrow import (
    check_model,
    flags_restored,
    forked_rng,
    forward_batches,
)
from dropkit.errors import DropkitValueError, expected

DEFAULT_THRESHOLD = 1.2


def batchnorm_layers(model: nn.Module) -> list[tuple[str, _BatchNorm]]:
    """BatchNorm layers of ``model`` that keep running statistics, with their paths."""
    return [(p, m) for p, m in model.named_modules()
            if isinstance(m, _BatchNorm) and m.track_running_stats and m.running_var is not None]


def require_batchnorm(model: nn.Module) -> list[tuple[str, _BatchNorm]]:
    layers = batchnorm_layers(model)
    if not layers:
        raise DropkitValueError(expected(
            "model", "a model with BatchNorm layers that track running statistics",
            f"a {type(model).__name__} with none"))
    return layers


@dataclass(frozen=True)
class LayerShift:
    """The variance shift of one BatchNorm layer.

    Attributes:
        path: the layer's module path.
        ratio: per channel ``running_var / inference variance``, float64, shape ``(C,)``; NaN for
            channels whose inference variance is 0 (dead units).
        median, mean, min, max: summaries over the channels with a finite ratio.
        flagged: ``median > threshold`` or ``median < 1 / threshold``.
    """

    path: str
    ratio: torch.Tensor
    median: float
    mean: float
    min: float
    max: float
    flagged: bool


@dataclass(frozen=True)
class VarianceShift:
    """`variance_shift`'s result: one `LayerShift` per BatchNorm layer, in model order."""

    layers: list[LayerShift]
    threshold: float

    @property
    def flagged(self) -> list[LayerShift]:
        return [s for s in self.layers if s.flagged]

    def __getitem__(self, path: str) -> LayerShift:
        for s in self.layers:
            if s.path == path:
                return s
        raise KeyError(path)

    def __str__(self) -> str:
        lines = [f"BatchNorm variance shift (running var / inference var), flag beyond "
                 f"{self.threshold:g}x or below 1/{self.threshold:g}"]
        width = max(len("LAYER"), *(len(s.path) for s in self.layers))
        lines.append(f"{'LAYER':<{width}}  {'median':>8}  {'mean':>8}  {'min':>8}  {'max':>8}")
        for s in self.layers:
            mark = "  <- shifted" if s.flagged else ""
            lines.append(f"{s.path:<{width}}  {s.median:8.3f}  {s.mean:8.3f}  {s.min:8.3f}  "
                         f"{s.max:8.3f}{mark}")
        return "\n".join(lines)


class _Moments:
    """Per-channel count, mean and sum of squared deviations, merged batch by batch (Chan)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> None:
        c = x.shape[1] if x.dim() > 1 else 1
        cols = x.detach().double().transpose(0, 1).reshape(c, -1)  # (C, B * spatial)
        nb = cols.shape[1]
        mb = cols.mean(1)
        m2b = ((cols - mb[:, None]) ** 2).sum(1)
        if self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * nb / n
        self.m2 = self.m2 + m2b + delta**2 * self.n * nb / n
        self.n = n

    def variance(self) -> torch.Tensor:
        assert self.m2 is not None
        return self.m2 / max(self.n - 1, 1)


def _summary(path: str, ratio: torch.Tensor, threshold: float) -> LayerShift:
    ok = ratio[torch.isfinite(ratio)]
    if ok.numel() == 0:
        nan = float("nan")
        return LayerShift(path, ratio, nan, nan, nan, nan, False)
    med = float(ok.median())
    return LayerShift(path, ratio, med, float(ok.mean()), float(ok.min()), float(ok.max()),
                      med > threshold or med < 1.0 / threshold)


def variance_shift(model: nn.Module, data: object, *, threshold: float = DEFAULT_THRESHOLD,
                   batch_size: int = 256) -> VarianceShift:
    """Measure the train/inference variance shift of every BatchNorm layer of ``model``.

    Runs ``data`` through the model with every module in eval mode (dropout off, BatchNorm on
    its running statistics) and compares each BatchNorm's running variance with the variance
    of the inputs it receives (see the module docstring for the formula).

    Args:
        model: a trained model with BatchNorm; borrowed: parameters, buffers, flags and the
            global random state are as they were afterwards, also on error.
        data: inputs: a tensor (split into batches of ``batch_size`` rows) or an iterable of
            batches (tensors or ``(x, y, ...)`` tuples, e.g. a DataLoader).
        threshold: a layer is flagged when its median channel ratio is above ``threshold``
            or below ``1 / threshold``; must be > 1.
        batch_size: rows per forward pass when ``data`` is a tensor.

    Returns:
        A `VarianceShift` with one `LayerShift` per BatchNorm layer.
    """
    model = check_model(model)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not threshold > 1:
        raise DropkitValueError(expected("threshold", "a number > 1", repr(threshold)))
    layers = require_batchnorm(model)
    moments = {p: _Moments() for p, _ in layers}
    handles = [m.register_forward_pre_hook(lambda _m, args, p=p: moments[p].update(args[0]))
               for p, m in layers]
    try:
        with flags_restored(model), forked_rng(model), torch.no_grad():
            for m in model.modules():
                m.training = False
            forward_batches(model, data, batch_size)
    finally:
        for h in handles:
            h.remove()
    out = []
    for path, bn in layers:
        if moments[path].mean is None or bn.running_var is None:
            continue  # this layer did not run on the data (or keeps no running variance)
        test_var = moments[path].variance()
        ratio = bn.running_var.detach().double().cpu() / test_var.cpu()
        ratio[test_var.cpu() <= 1e-12] = float("nan")
        out.append(_summary(path, ratio, float(threshold)))
    return VarianceShift(out, float(threshold))
