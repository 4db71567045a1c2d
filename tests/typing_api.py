"""The public API's types as a user's type checker sees them (checked by mypy in
scripts/test.sh; pytest does not collect it). dropkit ships py.typed, so these must hold."""

from __future__ import annotations

import torch
from torch import nn
from typing_extensions import assert_type

import dropkit


def _classification(model: nn.Module, x: torch.Tensor) -> None:
    mc = dropkit.MCDropout(model, samples=4, seed=0)
    pred = mc.predict(x)
    assert_type(pred, dropkit.ClassificationPrediction)
    assert_type(pred.mutual_information, torch.Tensor)
    assert_type(pred.sequence("predictive_entropy", "sum"), torch.Tensor)
    assert_type(mc.deterministic(x).mean, torch.Tensor)
    assert_type(mc.predict_loader([x]), dropkit.ClassificationPrediction)


def _regression(model: nn.Module, x: torch.Tensor) -> None:
    pred = dropkit.MCDropout(model, task="regression", tau=10.0).predict(x)
    assert_type(pred, dropkit.RegressionPrediction)
    assert_type(pred.total_variance, torch.Tensor)
    assert_type(pred.log_likelihood(x), torch.Tensor)


def _any_task(model: nn.Module, x: torch.Tensor, task: str) -> None:
    pred = dropkit.MCDropout(model, task=task).predict(x)
    assert_type(pred, dropkit.Prediction)
    if isinstance(pred, dropkit.RegressionPrediction):
        assert_type(pred.epistemic_variance, torch.Tensor)


def _lower_levels(model: nn.Module, x: torch.Tensor) -> None:
    samples = dropkit.sample(model, x, 8, seed=0)
    with dropkit.mc_mode(model) as report:
        assert_type(report, dropkit.MCModeReport)
    assert_type(dropkit.find_dropout(model).sites[0], dropkit.DropoutSite)
    assert isinstance(samples, torch.Tensor)
    assert_type(dropkit.uncertainty.mutual_information(samples, from_logits=True), torch.Tensor)
    assert_type(dropkit.functional.dropout(x, 0.5, active=True), torch.Tensor)
    assert_type(dropkit.nn.Dropout(0.5).forward(x), torch.Tensor)
