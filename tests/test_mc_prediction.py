"""The two prediction types: values against float64 hand computation, one validation, and the
deprecation path of the fields the other task used to carry as None."""

import copy
import math

import pytest
import torch

import dropkit
from dropkit.mc.prediction import Prediction
from dropkit.measures import regression as R


def _means() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 4, 2, generator=g), torch.randn(4, 2, generator=g)  # (S, B, D), (B, D)


def test_regression_values_match_a_float64_hand_computation() -> None:
    means, y = _means()
    tau = 4.0
    pred = Prediction.regression(means, log_var=None, tau=tau, keep=True, strategy="loop",
                                 reason="test", target=y)
    m64 = means.double()
    mean, epi = m64.mean(0), m64.var(0, unbiased=False)
    torch.testing.assert_close(pred.mean, mean.float())
    torch.testing.assert_close(pred.epistemic_variance, epi.float())
    torch.testing.assert_close(pred.aleatoric_variance, torch.full_like(pred.mean, 1 / tau))
    torch.testing.assert_close(pred.total_variance, (epi + 1 / tau).float())
    # Gal & Ghahramani's formula: logsumexp_s(-tau/2 (y - mu_s)^2) - log S - log(2 pi)/2
    # + log(tau)/2
    ll = (torch.logsumexp(-tau / 2 * (y.double() - m64) ** 2, 0) - math.log(6)
          - 0.5 * math.log(2 * math.pi) + 0.5 * math.log(tau))
    assert pred.target_log_likelihood is not None
    torch.testing.assert_close(pred.target_log_likelihood, ll.float())
    torch.testing.assert_close(pred.log_likelihood(y), ll.float())
    assert pred.samples is means and pred.likelihood_target is y


def test_regression_validates_the_samples_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def counted(name: str, value: object) -> torch.Tensor:
        calls.append(name)
        return real(name, value)

    real = R.regression_means
    monkeypatch.setattr(R, "regression_means", counted)
    means, y = _means()
    Prediction.regression(means, log_var=None, tau=2.0, keep=False, strategy="loop",
                          reason="test", target=y)
    assert calls == ["means"]


def test_fields_of_the_other_task_read_none_with_a_deprecation_warning() -> None:
    reg_model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.3),
                                    torch.nn.Linear(8, 1))
    x = torch.randn(5, 3)
    reg = dropkit.MCDropout(reg_model, task="regression", samples=4, tau=1.0, seed=0).predict(x)
    clf = dropkit.MCDropout(reg_model, samples=4, seed=0).predict(x)  # one class: fine here
    assert isinstance(reg, dropkit.RegressionPrediction) and reg.task == "regression"
    assert isinstance(clf, dropkit.ClassificationPrediction) and clf.task == "classification"
    for pred, name in ((reg, "mutual_information"), (reg, "token_mask"),
                       (clf, "total_variance"), (clf, "tau")):
        with pytest.warns(DeprecationWarning, match=f"`{name}` is not a field"):
            assert getattr(pred, name) is None
    with pytest.raises(AttributeError, match="no_such_field"):
        _ = reg.no_such_field
    with pytest.raises(dropkit.DropkitValueError, match="used on a regression prediction"):
        clf.log_likelihood(torch.zeros(5, 1))
    with pytest.raises(dropkit.DropkitValueError, match="used on a token prediction"):
        reg.sequence()


def test_copies_and_concatenation_keep_the_type() -> None:
    means, _ = _means()
    pred = Prediction.regression(means, log_var=None, tau=2.0, keep=True, strategy="loop",
                                 reason="test")
    twin = copy.deepcopy(pred)
    assert type(twin) is dropkit.RegressionPrediction and torch.equal(twin.mean, pred.mean)
    both = Prediction.concatenate([pred, twin])
    assert type(both) is dropkit.RegressionPrediction
    torch.testing.assert_close(both.total_variance, torch.cat([pred.total_variance] * 2))
    assert both.samples is not None and both.samples.shape[1] == 8
