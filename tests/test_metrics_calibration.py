"""ECE and reliability bins vs torchmetrics (equal width) and a naive loop (equal mass)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import multiclass_calibration_error

from dropkit.errors import DropkitError, DropkitTypeError, DropkitValueError
from dropkit.metrics import CalibrationError, calibration_bins, expected_calibration_error


def _data(b: int = 500, c: int = 4, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = 1.5 * torch.randn(b, c, generator=g, dtype=dtype)
    # labels drawn from a sharpened softmax: miscalibrated on purpose, so ECE is far from 0
    target = torch.multinomial(torch.softmax(0.5 * logits, 1), 1, generator=g).squeeze(1)
    return logits, target


def _naive_ece(conf: np.ndarray, correct: np.ndarray, edges: list[float], norm: str) -> float:
    n_bins = len(edges) - 1
    members: list[list[int]] = [[] for _ in range(n_bins)]
    for i, c in enumerate(conf):
        for k in range(n_bins):
            last = k == n_bins - 1
            if edges[k] <= c and (c < edges[k + 1] or (last and c <= edges[k + 1])):
                members[k].append(i)
                break
    gaps, weights = [], []
    for m in members:
        if m:
            gaps.append(abs(np.mean(correct[m]) - np.mean(conf[m])))
            weights.append(len(m) / len(conf))
    if norm == "l1":
        return float(sum(w * g for w, g in zip(weights, gaps, strict=True)))
    if norm == "l2":
        return float(np.sqrt(sum(w * g * g for w, g in zip(weights, gaps, strict=True))))
    return float(max(gaps))


@pytest.mark.parametrize("n_bins", [1, 10, 15])
@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_width_matches_torchmetrics(n_bins: int, norm: str) -> None:
    logits, target = _data()
    probs = torch.softmax(logits, 1)
    assert probs.max() < 1.0  # torchmetrics gives conf == 1.0 a bin of its own
    ref = multiclass_calibration_error(probs, target, num_classes=4, n_bins=n_bins, norm=norm)
    got = expected_calibration_error(probs, target, from_logits=False, n_bins=n_bins, norm=norm)
    assert got == pytest.approx(ref.item(), abs=1e-6)
    got_logits = expected_calibration_error(logits, target, from_logits=True, n_bins=n_bins,
                                            norm=norm)
    assert got_logits == pytest.approx(ref.item(), abs=1e-5)
    assert got > 0.02  # the data are miscalibrated: a zero would make the test vacuous


@pytest.mark.parametrize("n_bins", [3, 10])
@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_mass_matches_naive_loop(n_bins: int, norm: str) -> None:
    logits, target = _data(b=301, dtype=torch.float64, seed=2)
    probs = torch.softmax(logits, 1).numpy()
    conf = probs.max(1)
    correct = (probs.argmax(1) == target.numpy()).astype(float)
    edges = [0.0, *np.quantile(conf, np.arange(1, n_bins) / n_bins).tolist(), 1.0]
    ref = _naive_ece(conf, correct, edges, norm)
    got = expected_calibration_error(logits, target, from_logits=True, n_bins=n_bins,
                                     binning="mass", norm=norm)
    assert got == pytest.approx(ref, rel=1e-10)
    bins = calibration_bins(logits, target, from_logits=True, n_bins=n_bins, binning="mass")
    np.testing.assert_allclose(bins.upper[:-1].numpy(), edges[1:-1], rtol=1e-12)
    # no ties in continuous confidences: counts differ by at most one from N / n_bins
    assert (bins.count - 301 / n_bins).abs().max() <= 1


def test_bins_fields_match_naive_loop() -> None:
    logits, target = _data(b=200, seed=3, dtype=torch.float64)
    bins = calibration_bins(logits, target, from_logits=True, n_bins=10)
    probs = torch.softmax(logits, 1)
    conf, pred = probs.max(1)
    correct = (pred == target).double()
    assert bins.count.sum() == 200
    for k in range(10):
        lo, hi = k / 10, (k + 1) / 10
        inside = (conf >= lo) & ((conf < hi) if k < 9 else (conf <= hi))
        assert bins.count[k] == inside.sum()
        assert bins.lower[k] == pytest.approx(lo) and bins.upper[k] == pytest.approx(hi)
        if inside.any():
            assert bins.confidence[k] == pytest.approx(conf[inside].mean().item(), rel=1e-12)
            assert bins.accuracy[k] == pytest.approx(correct[inside].mean().item(), rel=1e-12)
        else:
            assert torch.isnan(bins.confidence[k]) and torch.isnan(bins.accuracy[k])


def test_confidence_one_goes_to_last_bin() -> None:
    probs = torch.tensor([[1.0, 0.0], [0.55, 0.45]])
    bins = calibration_bins(probs, torch.tensor([0, 1]), from_logits=False, n_bins=2)
    assert bins.count.tolist() == [0.0, 2.0]
    ece = expected_calibration_error(probs, torch.tensor([0, 1]), from_logits=False, n_bins=2)
    assert ece == pytest.approx(abs(0.5 - (1.0 + 0.55) / 2))


@pytest.mark.parametrize("binning", ["width", "mass"])
def test_streaming_equals_function(binning: str) -> None:
    logits, target = _data(b=300, seed=4)
    metric = CalibrationError(from_logits=True, n_bins=8, binning=binning)
    for chunk in range(0, 300, 70):
        metric.update(logits[chunk:chunk + 70], target[chunk:chunk + 70])
    ref = expected_calibration_error(logits, target, from_logits=True, n_bins=8,
                                     binning=binning)
    assert metric.compute().item() == pytest.approx(ref, abs=1e-12)
    ref_bins = calibration_bins(logits, target, from_logits=True, n_bins=8, binning=binning)
    torch.testing.assert_close(metric.bins().count, ref_bins.count, rtol=0, atol=0)
    metric.reset()
    metric.update(logits[:50], target[:50])
    ref50 = expected_calibration_error(logits[:50], target[:50], from_logits=True, n_bins=8,
                                       binning=binning)
    assert metric.compute().item() == pytest.approx(ref50, abs=1e-12)
    metric.reset()
    with pytest.raises(DropkitError, match="before any update"):
        metric.compute()


def test_bad_options() -> None:
    logits, target = _data(b=20)
    with pytest.raises(DropkitValueError, match="`binning` to be one of 'width', 'mass'"):
        expected_calibration_error(logits, target, from_logits=True, binning="quantile")
    with pytest.raises(DropkitValueError, match="`norm` to be one of 'l1', 'l2', 'max'"):
        expected_calibration_error(logits, target, from_logits=True, norm="l3")
    with pytest.raises(DropkitValueError, match="`n_bins` to be an integer >= 1"):
        calibration_bins(logits, target, from_logits=True, n_bins=0)
    with pytest.raises(DropkitTypeError, match="`n_bins` to be an integer >= 1"):
        calibration_bins(logits, target, from_logits=True, n_bins=2.5)
    with pytest.raises(DropkitValueError, match="`binning` to be one of"):
        CalibrationError(from_logits=True, binning="equal")
    with pytest.raises(DropkitTypeError, match="`from_logits` to be a bool"):
        CalibrationError(from_logits=None)
    with pytest.raises(DropkitValueError, match="`target` to be class indices in"):
        expected_calibration_error(logits, target + 4, from_logits=True)
    with pytest.raises(DropkitValueError, match="`preds` to be probabilities"):
        expected_calibration_error(logits, target, from_logits=False)
