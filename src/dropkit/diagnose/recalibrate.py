"""`recalibrate_bn`: re-estimate BatchNorm statistics with dropout off.

The remedy for dropout before BatchNorm when retraining is not an option (Li et al., CVPR 2019
discuss it; ``torch.optim.swa_utils.update_bn`` does the same for averaged weights): reset each
BatchNorm's running statistics and re-estimate them as an equal-weight average over the data's
batches (``momentum=None``), with every module in eval mode except the BatchNorm layers, so
dropout is off exactly as at inference.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from dropkit._validate import check_finite
from dropkit.diagnose._borrow import (
    check_model,
    flags_restored,
    forked_rng,
    forward_batches,
)
from dropkit.diagnose.variance import require_batchnorm
from dropkit.errors import DropkitTypeError, DropkitValueError, expected


def recalibrate_bn(model: nn.Module, data: object, *, inplace: bool = False,
                   batch_size: int = 256) -> nn.Module:
    """Return ``model`` with BatchNorm running statistics re-estimated with dropout off.

    Args:
        model: a trained model with BatchNorm layers that track running statistics.
        data: training inputs: a tensor (split into batches of ``batch_size`` rows) or an
            iterable of batches (tensors or ``(x, y, ...)`` tuples, e.g. a DataLoader). Use
            batches of at least a few dozen rows: each batch's statistics weigh equally.
        inplace: write the new statistics into ``model`` itself and return it. By default a
            deep copy is corrected and returned, and ``model`` is left untouched.
        batch_size: rows per forward pass when ``data`` is a tensor.

    Returns:
        The corrected model (a copy unless ``inplace``), with the same training flags and
        BatchNorm momentum as ``model``. On error nothing of ``model`` has changed; data that
        gives non-finite statistics (NaN or infinite inputs) is an error.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> import dropkit.diagnose as dg
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.BatchNorm1d(8))
        >>> fixed = dg.recalibrate_bn(net, torch.randn(64, 4))
        >>> fixed is net, int(fixed[2].num_batches_tracked)
        (False, 1)
    """
    model = check_model(model)
    if not isinstance(inplace, bool):
        raise DropkitTypeError(expected("inplace", "a bool", repr(inplace)))
    require_batchnorm(model)
    if isinstance(data, torch.Tensor) and data.is_floating_point():
        check_finite("data", data)  # NaN here would become the model's running statistics
    if inplace:
        work = model
    else:
        try:
            work = copy.deepcopy(model)
        except Exception as exc:  # say why, and what to do instead
            raise DropkitTypeError(expected(
                "model", "a deep-copyable module (or pass inplace=True)",
                f"{type(model).__name__}, whose deepcopy raised {type(exc).__name__}: {exc}"
            )) from exc
    named = require_batchnorm(work)
    layers = [bn for _, bn in named]
    saved = [(bn, bn.momentum, {k: v.clone() for k, v in bn.named_buffers(recurse=False)
                                if v is not None})
             for bn in layers]
    ok = False
    try:
        with flags_restored(work), forked_rng(work), torch.no_grad():
            for m in work.modules():
                m.training = False
            for bn in layers:
                bn.reset_running_stats()
                bn.momentum = None  # cumulative average: every batch weighs the same
                bn.training = True
            forward_batches(work, data, batch_size)
        # batches from an iterable are only seen here: a non-finite statistic is rejected
        # (and the old ones given back below) rather than written into the model
        bad = [name or type(bn).__name__ for name, bn in named
               if any(v is not None and v.is_floating_point() and not bool(v.isfinite().all())
                      for v in (bn.running_mean, bn.running_var))]
        if bad:
            raise DropkitValueError(expected(
                "data", "batches that give finite BatchNorm statistics",
                f"NaN or infinite running statistics in {', '.join(bad)} (non-finite inputs, "
                "or activations that overflow)"))
        ok = True
    finally:
        for bn, momentum, buffers in saved:
            bn.momentum = momentum
            if not ok:  # give the buffers back: the caller's model is unchanged on error
                with torch.no_grad():
                    for k, v in buffers.items():
                        getattr(bn, k).copy_(v)
    return work
