"""samples="auto": sample in chunks until the standard errors are below tol (or max_samples)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import dropkit
from dropkit.errors import DropkitValueError
from dropkit.measures import ClassificationStream

torch.set_num_threads(1)


def _model(scale: float) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3)).eval()
    with torch.no_grad():
        net[3].weight.mul_(scale)
    return net


def test_stops_when_standard_errors_are_below_tol() -> None:
    x = torch.randn(6, 4)
    pred = dropkit.MCDropout(_model(1.0), samples="auto", tol=0.02, max_samples=4000, chunk=16,
                             seed=0, progress=False).predict(x)
    s = pred.n_samples
    assert 32 <= s < 4000 and s % 16 == 0
    assert f"stopped at S={s}" in pred.strategy_reason
    # recompute the stopping quantity independently from kept samples of the same run
    kept = dropkit.MCDropout(_model(1.0), samples="auto", tol=0.02, max_samples=4000, chunk=16,
                             seed=0, keep_samples=True, progress=False).predict(x)
    assert kept.n_samples == s and kept.samples is not None and kept.samples.shape[0] == s
    probs = kept.samples.softmax(-1)
    se = probs.std(0) / math.sqrt(s)
    assert float(se.max()) <= 0.02
    torch.testing.assert_close(kept.mean, pred.mean)
    # one chunk fewer was not precise enough: the mean's or the MI's standard error was > tol
    if s > 32:
        stream = ClassificationStream(from_logits=True)
        for chunk in torch.split(kept.samples[: s - 16], 16):
            stream.update(chunk)
        prev_mean_se = float((probs[: s - 16].std(0) / math.sqrt(s - 16)).max())
        assert prev_mean_se > 0.02 or float(stream.mi_se().max()) > 0.02


def test_noisy_model_hits_max_samples_and_deterministic_stops_early() -> None:
    x = torch.randn(3, 4)
    noisy = dropkit.MCDropout(_model(30.0), samples="auto", tol=1e-4, max_samples=96, chunk=32,
                              progress=False, seed=1).predict(x)
    assert noisy.n_samples == 96
    calm = dropkit.MCDropout(_model(0.0), samples="auto", tol=1e-3, max_samples=1000, chunk=8,
                             progress=False, seed=1).predict(x)
    assert calm.n_samples == 16  # two chunks: the first point at which it checks


def test_predict_loader_reports_samples_per_batch() -> None:
    data = [torch.zeros(2, 4), torch.randn(3, 4) * 5]
    model = _model(1.0)
    pred = dropkit.MCDropout(model, samples="auto", tol=0.01, max_samples=512, chunk=16,
                             progress=False, seed=0).predict_loader(data)
    assert pred.samples_per_batch is not None and len(pred.samples_per_batch) == 2
    assert pred.n_samples == max(pred.samples_per_batch)
    assert pred.mean.shape == (5, 3)


def test_bad_auto_arguments() -> None:
    with pytest.raises(DropkitValueError, match="tol"):
        dropkit.MCDropout(_model(1.0), samples="auto", tol=0.0)
    with pytest.raises(DropkitValueError, match="max_samples"):
        dropkit.MCDropout(_model(1.0), samples="auto", max_samples=0)
    with pytest.raises(DropkitValueError, match="samples"):
        dropkit.MCDropout(_model(1.0), samples="many")  # type: ignore[arg-type]
