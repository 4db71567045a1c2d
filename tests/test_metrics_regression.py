"""rmse, gaussian_nll, interval_coverage vs scikit-learn, torch and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from dropkit.errors import DropkitError, DropkitTypeError, DropkitValueError
from dropkit.metrics import (
    RMSE,
    GaussianNLL,
    IntervalCoverage,
    gaussian_nll,
    interval_coverage,
    rmse,
)


def _data(shape=(300,), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(*shape, generator=g, dtype=torch.float64)
    std = 0.2 + torch.rand(*shape, generator=g, dtype=torch.float64)
    target = mean + std * torch.randn(*shape, generator=g, dtype=torch.float64)
    return mean, std, target


@pytest.mark.parametrize("shape", [(300,), (60, 3)])
def test_rmse_matches_sklearn(shape) -> None:
    from sklearn.metrics import mean_squared_error

    mean, _, target = _data(shape)
    ref = math.sqrt(mean_squared_error(target.numpy().ravel(), mean.numpy().ravel()))
    assert rmse(mean, target) == pytest.approx(ref, rel=1e-12)
    assert rmse(mean.float().numpy(), target.float().numpy()) == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("shape", [(300,), (60, 3)])
def test_gaussian_nll_matches_torch(shape) -> None:
    mean, std, target = _data(shape)
    var = std**2
    ref = torch.nn.functional.gaussian_nll_loss(mean, target, var, full=True).item()
    assert gaussian_nll(mean, var, target) == pytest.approx(ref, rel=1e-12)
    ref_scipy = -norm.logpdf(target.numpy(), mean.numpy(), std.numpy()).mean()
    assert gaussian_nll(mean, var, target) == pytest.approx(ref_scipy, rel=1e-12)


def test_interval_coverage_matches_loop_and_level() -> None:
    mean, std, target = _data((4000,), seed=1)
    for level in (0.5, 0.9, 0.95):
        z = norm.ppf(0.5 + level / 2)
        ref = np.mean([abs(t - m) <= z * s for m, s, t in
                       zip(mean.tolist(), std.tolist(), target.tolist(), strict=True)])
        got = interval_coverage(mean, std, target, level=level)
        assert got == ref
        # calibrated data: binomial s.e. at N=4000 is <= 0.008, allow 5 s.e.
        assert abs(got - level) < 0.04
    # zero std covers only exact hits
    assert interval_coverage(mean, torch.zeros(4000, dtype=torch.float64), mean) == 1.0


def test_bad_regression_input() -> None:
    mean, std, target = _data((10,))
    with pytest.raises(DropkitValueError, match=r"`target` to be a tensor of shape \(10,\)"):
        rmse(mean, target[:5])
    with pytest.raises(DropkitValueError, match="`preds` to be finite values, but got 1 NaN"):
        rmse(torch.tensor([float("nan"), 1.0]), torch.zeros(2))
    with pytest.raises(DropkitValueError, match="`preds` to be a non-empty tensor"):
        rmse(torch.zeros(0), torch.zeros(0))
    with pytest.raises(DropkitTypeError, match="`target` to be a floating-point tensor"):
        rmse(mean, torch.zeros(10, dtype=torch.long))
    with pytest.raises(DropkitValueError, match="`var` to be strictly positive variances"):
        gaussian_nll(mean, torch.zeros(10), target)
    with pytest.raises(DropkitValueError, match=r"`var` to be a tensor of shape \(10,\)"):
        gaussian_nll(mean, std[:3], target)
    with pytest.raises(DropkitValueError, match="`std` to be non-negative"):
        interval_coverage(mean, -std, target)
    with pytest.raises(DropkitValueError, match=r"`level` to be a float in \(0, 1\)"):
        interval_coverage(mean, std, target, level=0.0)
    with pytest.raises(DropkitValueError, match=r"`level` to be a float in \[0, 1\)"):
        interval_coverage(mean, std, target, level=1.0)
    with pytest.raises(DropkitValueError, match="`std` to be finite values"):
        interval_coverage(mean, std.clone().fill_(float("inf")), target)


def test_streaming_objects_equal_functions() -> None:
    mean, std, target = _data((250, 2), seed=3)
    var = std**2
    objs = [RMSE(), GaussianNLL(), IntervalCoverage(level=0.8)]
    for start in range(0, 250, 60):
        sl = slice(start, start + 60)
        objs[0].update(mean[sl], target[sl])
        objs[1].update(mean[sl], var[sl], target[sl])
        objs[2].update(mean[sl], std[sl], target[sl])
    assert objs[0].compute().item() == pytest.approx(rmse(mean, target), rel=1e-12)
    assert objs[1].compute().item() == pytest.approx(gaussian_nll(mean, var, target), rel=1e-12)
    assert objs[2].compute().item() == pytest.approx(
        interval_coverage(mean, std, target, level=0.8), rel=1e-12)
    for obj in objs:
        obj.reset()
        with pytest.raises(DropkitError, match="before any update"):
            obj.compute()
    with pytest.raises(DropkitValueError, match=r"`level` to be a float in \[0, 1\)"):
        IntervalCoverage(level=1.5)
    with pytest.raises(DropkitValueError, match="`var` to be strictly positive"):
        GaussianNLL().update(mean, -var, target)
