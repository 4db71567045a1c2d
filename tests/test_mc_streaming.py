"""Streaming statistics equal the stored-samples measures, in one chunk of memory."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import dropkit
from dropkit import uncertainty as U
from dropkit.errors import DropkitValueError
from dropkit.measures import ClassificationStream, RegressionStream

torch.set_num_threads(1)


def _chunks(t: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    return list(torch.split(t, sizes, dim=0))


@pytest.mark.parametrize("from_logits", [True, False])
def test_classification_stream_equals_uncertainty_functions(from_logits: bool) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(37, 5, 4, generator=g, dtype=torch.float64) * 3
    samples = logits if from_logits else logits.softmax(-1)
    stream = ClassificationStream(from_logits=from_logits)
    for c in _chunks(samples, [1, 10, 7, 19]):
        stream.update(c)
    got = stream.measures()
    kw = {"from_logits": from_logits}
    torch.testing.assert_close(got["mean"], U.predictive_probs(samples, **kw))
    torch.testing.assert_close(got["predictive_entropy"], U.predictive_entropy(samples, **kw))
    torch.testing.assert_close(got["expected_entropy"], U.expected_entropy(samples, **kw))
    torch.testing.assert_close(got["mutual_information"], U.mutual_information(samples, **kw))
    torch.testing.assert_close(got["variation_ratio"], U.variation_ratio(samples, **kw))
    torch.testing.assert_close(got["class_std"], U.class_std(samples, **kw))
    # standard error of the mean probability: std over samples (unbiased) / sqrt(S)
    p = samples.softmax(-1) if from_logits else samples
    torch.testing.assert_close(stream.mean_se(), p.std(0) / math.sqrt(37))


@pytest.mark.parametrize("noise", ["tau", "log_var"])
def test_regression_stream_equals_uncertainty_functions(noise: str) -> None:
    g = torch.Generator().manual_seed(1)
    means = torch.randn(23, 6, 2, generator=g, dtype=torch.float64)
    log_var = torch.randn(23, 6, 2, generator=g, dtype=torch.float64) * 0.3
    target = torch.randn(6, 2, generator=g, dtype=torch.float64)
    tau = 2.5 if noise == "tau" else None
    lv = log_var if noise == "log_var" else None
    stream = RegressionStream(tau=tau, target=target)
    for i, c in enumerate(_chunks(means, [4, 4, 15])):
        stream.update(c, None if lv is None else _chunks(lv, [4, 4, 15])[i])
    got = stream.measures()
    torch.testing.assert_close(got["mean"], U.predictive_mean(means))
    torch.testing.assert_close(got["epistemic_variance"], U.epistemic_variance(means))
    torch.testing.assert_close(got["aleatoric_variance"],
                               U.aleatoric_variance(means, log_var=lv, tau=tau))
    torch.testing.assert_close(got["target_log_likelihood"],
                               U.gaussian_mixture_log_likelihood(means, target, tau=tau,
                                                                 log_var=lv))


def _clf() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.4), nn.Linear(16, 3)).eval()


@pytest.mark.parametrize("strategy", ["loop", "auto"])
def test_keep_samples_false_equals_kept_path(strategy: str) -> None:
    model, x = _clf(), torch.randn(5, 6)
    kept = dropkit.MCDropout(model, samples=50, strategy=strategy, seed=3,
                             progress=False).predict(x)
    streamed = dropkit.MCDropout(model, samples=50, strategy=strategy, seed=3, chunk=7,
                                 keep_samples=False, progress=False).predict(x)
    assert streamed.samples is None and streamed.n_samples == 50
    assert streamed.strategy == kept.strategy
    for name in ("mean", "predictive_entropy", "expected_entropy", "mutual_information",
                 "variation_ratio", "class_std"):
        torch.testing.assert_close(getattr(streamed, name), getattr(kept, name),
                                   rtol=1e-5, atol=1e-6, msg=name)


def test_regression_streaming_with_target_log_likelihood() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Dropout(0.3), nn.Linear(16, 1),
                          nn.Flatten(0)).eval()
    x, y = torch.randn(8, 3), torch.randn(8)
    kept = dropkit.MCDropout(model, "regression", samples=40, tau=4.0, strategy="loop", seed=2,
                             progress=False).predict(x)
    streamed = dropkit.MCDropout(model, "regression", samples=40, tau=4.0, strategy="loop",
                                 seed=2, chunk=6, keep_samples=False,
                                 progress=False).predict(x, target=y)
    for name in ("mean", "epistemic_variance", "aleatoric_variance", "total_variance"):
        torch.testing.assert_close(getattr(streamed, name), getattr(kept, name), msg=name)
    torch.testing.assert_close(streamed.log_likelihood(y), kept.log_likelihood(y))
    torch.testing.assert_close(streamed.target_log_likelihood, kept.log_likelihood(y))
    with pytest.raises(DropkitValueError, match="target"):
        streamed.log_likelihood(y + 1)  # other targets need the samples
    with pytest.raises(DropkitValueError, match="target"):
        dropkit.MCDropout(model, "regression", samples=4, progress=False).predict(x, target=y)


def test_ten_thousand_samples_stream_in_chunks() -> None:
    model, x = _clf(), torch.randn(4, 6)
    largest: list[int] = []
    model[3].register_forward_hook(lambda m, a, out: largest.append(out.shape[0]))
    pred = dropkit.MCDropout(model, samples=10_000, strategy="stacked", max_batch=512,
                             chunk=500, keep_samples=False, seed=0, progress=False).predict(x)
    assert pred.n_samples == 10_000 and pred.samples is None
    assert max(largest) <= 512  # no pass (and so no chunk of activations) is larger
    torch.testing.assert_close(pred.mean.sum(-1), torch.ones(4))
    assert bool((pred.mutual_information >= 0).all())
