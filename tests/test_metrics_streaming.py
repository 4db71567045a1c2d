"""The streaming metrics as torchmetrics objects: DDP reduction, forward, collections, lazy load.

The DDP test runs torchmetrics' own sync path (``Metric._sync_dist``) with a gather function
that hands back a second "process"'s states, so no process group is needed: the synced value
must equal the pure function on both processes' data together.
"""

from __future__ import annotations

import importlib
import itertools
import sys

import pytest
import torch
import torchmetrics
from torchmetrics.utilities import dim_zero_cat

import dropkit
import dropkit.metrics as M

CLASS = [("Accuracy", M.accuracy, {}), ("NegativeLogLikelihood", M.negative_log_likelihood, {}),
         ("BrierScore", M.brier_score, {}),
         ("CalibrationError", M.expected_calibration_error, {"n_bins": 7}),
         ("CalibrationError", M.expected_calibration_error, {"n_bins": 5, "binning": "mass"})]


def _class_data(b: int = 240, c: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(b, c, generator=g, dtype=torch.float64)
    return logits, torch.randint(0, c, (b,), generator=g)


def _gather_from(other: torchmetrics.Metric):
    """A ``dist_sync_fn`` for two processes: this one's state, then ``other``'s same state
    (torchmetrics gathers the states one by one in the order they were added)."""
    states = [dim_zero_cat(s) if isinstance(s, list) else s
              for s in (getattr(other, name) for name in other._reductions)]
    theirs = itertools.cycle(states)

    def gather(mine: torch.Tensor, group: object = None) -> list[torch.Tensor]:
        return [mine, next(theirs)]

    return gather


@pytest.mark.parametrize(("name", "fn", "opts"), CLASS)
def test_ddp_sync_equals_function_on_all_data(name: str, fn, opts: dict) -> None:
    logits, target = _class_data()
    cls = getattr(M, name)
    other = cls(from_logits=True, **opts)  # "process 1" saw the second part
    other.update(logits[150:], target[150:])
    mine = cls(from_logits=True, dist_sync_fn=_gather_from(other),
               distributed_available_fn=lambda: True, **opts)
    mine.update(logits[:90], target[:90])
    mine.update(logits[90:150], target[90:150])
    local = fn(logits[:150], target[:150], from_logits=True, **opts)
    full = fn(logits, target, from_logits=True, **opts)
    assert abs(full - local) > 1e-4  # the other process's rows change the value
    assert mine.compute().item() == pytest.approx(full, rel=1e-12, abs=1e-15)
    # compute() unsyncs afterwards: the local states are back
    plain = cls(from_logits=True, **opts)
    plain.update(logits[:150], target[:150])
    assert plain.compute().item() == pytest.approx(local, rel=1e-12, abs=1e-15)


def test_ddp_sync_regression() -> None:
    g = torch.Generator().manual_seed(1)
    mean, target = torch.randn(2, 200, generator=g, dtype=torch.float64)
    std = 0.5 + torch.rand(200, generator=g, dtype=torch.float64)
    cases = [(M.RMSE, M.rmse, (mean, target), {}),
             (M.GaussianNLL, M.gaussian_nll, (mean, std**2, target), {}),
             (M.IntervalCoverage, M.interval_coverage, (mean, std, target), {"level": 0.7})]
    for cls, fn, args, opts in cases:
        other = cls(**opts)
        other.update(*(a[120:] for a in args))
        mine = cls(dist_sync_fn=_gather_from(other), distributed_available_fn=lambda: True,
                   **opts)
        mine.update(*(a[:120] for a in args))
        assert mine.compute().item() == pytest.approx(fn(*args, **opts), rel=1e-12)


def test_forward_gives_batch_value_and_accumulates() -> None:
    # forward is what Lightning calls in a training step before self.log(name, metric)
    logits, target = _class_data(b=100, seed=2)
    metrics = torchmetrics.MetricCollection({"acc": M.Accuracy(from_logits=True),
                                             "nll": M.NegativeLogLikelihood(from_logits=True),
                                             "ece": M.CalibrationError(from_logits=True)})
    for start in (0, 30, 70):
        stop = {0: 30, 30: 70, 70: 100}[start]
        batch = metrics(logits[start:stop], target[start:stop])
        assert batch["nll"].item() == pytest.approx(
            M.negative_log_likelihood(logits[start:stop], target[start:stop], from_logits=True),
            rel=1e-12)
    total = metrics.compute()
    assert total["acc"].item() == M.accuracy(logits, target, from_logits=True)
    assert total["ece"].item() == pytest.approx(
        M.expected_calibration_error(logits, target, from_logits=True), abs=1e-12)
    assert all(isinstance(m, torchmetrics.Metric) for m in metrics.values())


def test_functions_work_without_torchmetrics(monkeypatch: pytest.MonkeyPatch) -> None:
    # a fresh dropkit.metrics while torchmetrics cannot be imported: the functions must not
    # need it, and the objects must say which extra to install
    monkeypatch.setitem(sys.modules, "torchmetrics", None)
    for name in [n for n in sys.modules if n.startswith("dropkit.metrics")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(dropkit, "metrics", M)  # put back after the test
    fresh = importlib.import_module("dropkit.metrics")
    assert fresh is not M
    logits, target = _class_data(b=50, seed=3)
    for fn in ("accuracy", "negative_log_likelihood", "expected_calibration_error"):
        got = getattr(fresh, fn)(logits, target, from_logits=True)
        assert got == getattr(M, fn)(logits, target, from_logits=True)
    assert fresh.auroc(logits[:, 0], target == 0) == M.auroc(logits[:, 0], target == 0)
    with pytest.raises(ImportError, match=r"pip install 'dropkit\[metrics\]'"):
        fresh.Accuracy  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'Acuracy'"):
        fresh.Acuracy  # noqa: B018
