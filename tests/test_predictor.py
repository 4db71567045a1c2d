"""MCDropout and Prediction: the one-call API, checked against hand-built references."""

import math

import pytest
import torch
from torch import nn

import dropkit
from tests.zoo.small import CNN, FunctionalMLP, assert_same_state, snapshot


def test_classification_prediction_matches_samples():
    model, x = CNN().eval(), torch.randn(4, 1, 8, 8)
    pred = dropkit.MCDropout(model, samples=16, seed=0).predict(x)
    ref = dropkit.sample(model, x, 16, strategy=pred.strategy, seed=0)
    assert torch.equal(pred.samples, ref)
    # independent reference: average softmax by hand
    torch.testing.assert_close(pred.mean, torch.softmax(ref, -1).mean(0))
    p = pred.mean
    torch.testing.assert_close(pred.predictive_entropy, -(p * p.log()).sum(-1))
    torch.testing.assert_close(pred.mutual_information,
                               pred.predictive_entropy - pred.expected_entropy)
    assert pred.n_samples == 16 and pred.task == "classification"
    assert pred.strategy in ("loop", "stacked", "cached") and pred.strategy_reason


def test_probability_outputs_need_from_logits_false():
    model = nn.Sequential(nn.Linear(6, 3), nn.Dropout(0.3), nn.Softmax(-1))
    pred = dropkit.MCDropout(model, samples=8, from_logits=False, seed=0).predict(torch.randn(5, 6))
    torch.testing.assert_close(pred.mean.sum(-1), torch.ones(5))


def test_deterministic_is_weight_scaled_eval_pass_and_restores_flags():
    model = CNN().train()
    snap, x = snapshot(model), torch.randn(4, 1, 8, 8)
    det = dropkit.MCDropout(model, samples=4).deterministic(x)
    assert_same_state(model, snap)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(det.mean, torch.softmax(model(x), -1))
    assert det.n_samples == 1 and det.strategy == "deterministic"
    torch.testing.assert_close(det.mutual_information, torch.zeros(4), atol=1e-6, rtol=0)


def test_mc_mean_converges_to_deterministic_for_linear_model():
    # For a model linear after its dropout, E[MC output] = the weight-scaled output.
    model = nn.Sequential(nn.Dropout(0.4), nn.Linear(5, 2)).eval()
    x = torch.randn(3, 5)
    mc = dropkit.MCDropout(model, "regression", samples=20_000, seed=0, keep_samples=True)
    pred, det = mc.predict(x), mc.deterministic(x)
    se = torch.sqrt(pred.epistemic_variance / 20_000)
    assert torch.all((pred.mean - det.mean).abs() <= 5 * se)


def test_regression_with_tau_and_log_likelihood_reference():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 1))
    x, y = torch.randn(6, 3), torch.randn(6, 1)
    pred = dropkit.MCDropout(model, "regression", samples=50, tau=4.0, seed=1).predict(x)
    s = pred.samples.double()  # (S, B, 1)
    torch.testing.assert_close(pred.aleatoric_variance, torch.full((6, 1), 0.25))
    torch.testing.assert_close(pred.epistemic_variance.double(), s.var(0, unbiased=False))
    torch.testing.assert_close(pred.total_variance, pred.epistemic_variance + 0.25)
    # Gal & Ghahramani's formula, computed by hand in float64
    tau = 4.0
    ref = (torch.logsumexp(-0.5 * tau * (y.double() - s) ** 2, 0) - math.log(50)
           - 0.5 * math.log(2 * math.pi) + 0.5 * math.log(tau))
    torch.testing.assert_close(pred.log_likelihood(y).double(), ref, rtol=1e-5, atol=1e-5)


class Hetero(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.3))
        self.mu, self.log_var = nn.Linear(16, 1), nn.Linear(16, 1)

    def forward(self, x):
        h = self.body(x)
        return self.mu(h), self.log_var(h)


def test_heteroscedastic_head():
    x = torch.randn(5, 2)
    pred = dropkit.MCDropout(Hetero(), "regression", samples=30, heteroscedastic=True,
                             seed=0).predict(x)
    torch.testing.assert_close(pred.aleatoric_variance, pred.log_var_samples.exp().mean(0))
    assert pred.mean.shape == (5, 1) and pred.total_variance.shape == (5, 1)
    ll = pred.log_likelihood(torch.zeros(5, 1))
    assert ll.shape == (5, 1) and torch.isfinite(ll).all()


def test_predict_loader_equals_batchwise_predict():
    model = FunctionalMLP().eval()
    batches = [torch.randn(4, 6), torch.randn(3, 6)]
    loader = [(b, torch.zeros(len(b))) for b in batches]
    joined = dropkit.MCDropout(model, samples=5, seed=3, progress=False).predict_loader(loader)
    ref = dropkit.MCDropout(model, samples=5, seed=3)
    parts = [ref.predict(b) for b in batches]
    torch.testing.assert_close(joined.mean, torch.cat([p.mean for p in parts]))
    torch.testing.assert_close(joined.samples, torch.cat([p.samples for p in parts], 1))
    assert joined.mean.shape == (7, 3)


def test_model_untouched_by_predict():
    model = CNN().train()
    snap = snapshot(model)
    dropkit.MCDropout(model, samples=3, seed=0).predict(torch.randn(2, 1, 8, 8))
    assert_same_state(model, snap)


def test_bad_arguments():
    model = CNN()
    with pytest.raises(ValueError, match=r"`task` to be one of 'classification', 'regression'"):
        dropkit.MCDropout(model, task="ranking")
    with pytest.raises(ValueError, match=r"`samples` to be an integer >= 1"):
        dropkit.MCDropout(model, samples=0)
    with pytest.raises(ValueError, match=r"`tau` to be a positive finite float"):
        dropkit.MCDropout(model, "regression", tau=-1.0)
    with pytest.raises(dropkit.NoDropoutError, match="no dropout at all"):
        dropkit.MCDropout(nn.Linear(2, 2))
    reg = nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.5))
    with pytest.raises(ValueError, match=r"class scores shaped \(B, C\)"):
        dropkit.MCDropout(reg, samples=2).predict(torch.randn(3, 2, 2, 2))
    with pytest.raises(ValueError, match=r"a \(mean, log_var\) pair"):
        dropkit.MCDropout(reg, "regression", samples=2, heteroscedastic=True).predict(
            torch.randn(3, 2))
    with pytest.raises(ValueError, match="regression prediction made with keep_samples=True"):
        dropkit.MCDropout(model, samples=2).predict(torch.randn(2, 1, 8, 8)).log_likelihood(
            torch.zeros(2))


def test_seeded_predictions_reproducible_across_model_copies():
    import copy

    model, x = CNN().eval(), torch.randn(6, 1, 8, 8)
    a = dropkit.MCDropout(model, samples=30, seed=4).predict(x)
    b = dropkit.MCDropout(copy.deepcopy(model), samples=30, seed=4).predict(x)
    assert torch.equal(a.samples, b.samples) and a.strategy_reason == b.strategy_reason
    assert "by rule" in a.strategy_reason
