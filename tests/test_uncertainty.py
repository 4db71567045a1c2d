"""Tests of dropkit.uncertainty against hand computations, naive loops and scipy."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dropkit.uncertainty
from dropkit.errors import DropkitTypeError, DropkitValueError
from dropkit.uncertainty import (
    aleatoric_variance,
    class_std,
    epistemic_variance,
    expected_entropy,
    gaussian_mixture_log_likelihood,
    mutual_information,
    predictive_entropy,
    predictive_mean,
    predictive_probs,
    total_variance,
    variation_ratio,
)

CLASS_FNS = [predictive_probs, predictive_entropy, expected_entropy, mutual_information,
             variation_ratio, class_std]


def _logits(s: int = 7, b: int = 5, c: int = 4, seed: int = 0, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(s, b, c, generator=g, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# naive references (pure Python / numpy loops, float64)
# ---------------------------------------------------------------------------------------------


def _np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _naive_class(logits: torch.Tensor) -> dict[str, np.ndarray]:
    z = logits.numpy()
    s, b, c = z.shape
    out = {k: np.zeros(b) for k in ("H", "EH", "MI", "VR")}
    out["pbar"] = np.zeros((b, c))
    out["std"] = np.zeros((b, c))
    for j in range(b):
        ps = [_np_softmax(z[i, j]) for i in range(s)]
        pbar = [sum(p[k] for p in ps) / s for k in range(c)]
        h = -sum(q * math.log(q) for q in pbar if q > 0)
        eh = sum(-sum(q * math.log(q) for q in p if q > 0) for p in ps) / s
        votes = [int(np.argmax(p)) for p in ps]
        modal = max(votes.count(k) for k in range(c))
        out["pbar"][j] = pbar
        out["H"][j], out["EH"][j], out["MI"][j] = h, eh, h - eh
        out["VR"][j] = 1 - modal / s
        for k in range(c):
            m = pbar[k]
            out["std"][j, k] = math.sqrt(sum((p[k] - m) ** 2 for p in ps) / s)
    return out


# ---------------------------------------------------------------------------------------------
# classification: references
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("from_logits", [True, False])
def test_classification_matches_naive_loop(from_logits: bool) -> None:
    logits = _logits()
    ref = _naive_class(logits)
    x = logits if from_logits else torch.softmax(logits, dim=-1)
    kw = {"from_logits": from_logits}
    np.testing.assert_allclose(predictive_probs(x, **kw).numpy(), ref["pbar"], atol=1e-12)
    np.testing.assert_allclose(predictive_entropy(x, **kw).numpy(), ref["H"], atol=1e-12)
    np.testing.assert_allclose(expected_entropy(x, **kw).numpy(), ref["EH"], atol=1e-12)
    np.testing.assert_allclose(mutual_information(x, **kw).numpy(), ref["MI"], atol=1e-12)
    np.testing.assert_allclose(variation_ratio(x, **kw).numpy(), ref["VR"], atol=0)
    np.testing.assert_allclose(class_std(x, **kw).numpy(), ref["std"], atol=1e-12)


def test_hand_computation_two_samples() -> None:
    # p1 = (1/2, 1/2), p2 = (1, 0): pbar = (3/4, 1/4)
    x = torch.tensor([[[0.5, 0.5]], [[1.0, 0.0]]], dtype=torch.float64)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    eh = (math.log(2) + 0.0) / 2
    assert predictive_probs(x, from_logits=False).tolist() == [[0.75, 0.25]]
    assert predictive_entropy(x, from_logits=False).item() == pytest.approx(h, abs=1e-15)
    assert expected_entropy(x, from_logits=False).item() == pytest.approx(eh, abs=1e-15)
    assert mutual_information(x, from_logits=False).item() == pytest.approx(h - eh, abs=1e-15)
    # both samples vote class 0 (tie in p1 goes to the lowest index)
    assert variation_ratio(x, from_logits=False).item() == 0.0
    assert class_std(x, from_logits=False).tolist() == [[0.25, 0.25]]


def test_disagreeing_one_hot_samples_give_ln2() -> None:
    x = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]], dtype=torch.float64)
    mi = mutual_information(x, from_logits=False)
    assert mi.item() == pytest.approx(math.log(2), abs=1e-15)
    assert expected_entropy(x, from_logits=False).item() == 0.0  # 0 log 0 = 0, no NaN
    assert variation_ratio(x, from_logits=False).item() == 0.5


def test_mi_zero_when_samples_agree() -> None:
    one = _logits(s=1, b=6, c=5)
    same = one.expand(9, 6, 5).contiguous()
    mi = mutual_information(same, from_logits=True)
    assert torch.all(mi == 0.0) or torch.allclose(mi, torch.zeros(6, dtype=mi.dtype), atol=1e-15)
    assert torch.all(mi >= 0)
    assert torch.all(variation_ratio(same, from_logits=True) == 0)
    assert torch.allclose(class_std(same, from_logits=True), torch.zeros(6, 5, dtype=mi.dtype))


def test_logits_and_probabilities_agree() -> None:
    logits = _logits(s=11, b=8, c=6, seed=3, scale=4.0)
    probs = torch.softmax(logits, dim=-1)
    for fn in CLASS_FNS:
        a, b = fn(logits, from_logits=True), fn(probs, from_logits=False)
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10, msg=fn.__name__)


def test_extreme_logits_stay_finite() -> None:
    # softmax saturates: many probabilities underflow to exactly 0 in float32
    logits = torch.tensor([[[0.0, 200.0, -200.0]], [[300.0, 0.0, -300.0]]])
    for fn in CLASS_FNS:
        assert torch.isfinite(fn(logits, from_logits=True)).all(), fn.__name__
    assert mutual_information(logits, from_logits=True).item() == pytest.approx(math.log(2))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype: torch.dtype) -> None:
    logits = _logits(c=50).to(dtype)
    out = predictive_entropy(logits, from_logits=True)
    assert out.dtype == torch.float32
    ref = predictive_entropy(logits.double(), from_logits=True)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)
    # half-precision probabilities sum to 1 only within their own precision: still accepted
    probs = torch.softmax(logits.float(), dim=-1).to(dtype)
    assert (probs.double().sum(-1) - 1).abs().max() > 1e-4
    assert predictive_entropy(probs, from_logits=False).dtype == torch.float32


@settings(max_examples=60, deadline=None)
@given(
    s=st.integers(1, 6), b=st.integers(1, 4), c=st.integers(1, 6),
    scale=st.floats(0.01, 30.0), seed=st.integers(0, 2**31 - 1),
    use_float64=st.booleans(),
)
def test_invariants_mi_entropy_logc(s: int, b: int, c: int, scale: float, seed: int,
                                    use_float64: bool) -> None:
    logits = _logits(s, b, c, seed=seed, scale=scale)
    if not use_float64:
        logits = logits.float()
    tol = 1e-12 if use_float64 else 1e-5
    h = predictive_entropy(logits, from_logits=True)
    eh = expected_entropy(logits, from_logits=True)
    mi = mutual_information(logits, from_logits=True)
    vr = variation_ratio(logits, from_logits=True)
    assert torch.all(mi >= 0)
    assert torch.all(mi <= h + tol)
    assert torch.all(eh >= -tol)
    assert torch.all(h <= math.log(c) + tol)
    assert torch.all((vr >= 0) & (vr <= 1 - 1 / c + tol))
    torch.testing.assert_close(predictive_probs(logits, from_logits=True).sum(-1),
                               torch.ones(b, dtype=logits.dtype))


# ---------------------------------------------------------------------------------------------
# classification: bad input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", CLASS_FNS)
def test_from_logits_is_required_and_bool(fn) -> None:
    x = torch.softmax(_logits(), dim=-1)
    with pytest.raises(TypeError):
        fn(x)
    with pytest.raises(DropkitTypeError, match="`from_logits` to be a bool"):
        fn(x, from_logits=1)


@pytest.mark.parametrize("fn", CLASS_FNS)
def test_bad_classification_input(fn) -> None:
    with pytest.raises(DropkitValueError, match=r"`samples` to be a \(S, B, \.\.\., C\) tensor"):
        fn(torch.rand(5, 3), from_logits=True)
    with pytest.raises(DropkitValueError, match="`samples` to be S >= 1 samples"):
        fn(torch.rand(0, 3, 2), from_logits=True)
    with pytest.raises(DropkitValueError, match="`samples` to be S >= 1 samples"):
        fn(torch.rand(2, 0, 2), from_logits=True)
    with pytest.raises(DropkitValueError, match="C >= 1 classes"):
        fn(torch.rand(2, 3, 0), from_logits=True)
    nan = _logits()
    nan[0, 0, 0] = float("nan")
    with pytest.raises(DropkitValueError, match="`samples` to be finite values, but got 1 NaN"):
        fn(nan, from_logits=True)
    with pytest.raises(DropkitTypeError, match="`samples` to be a floating-point tensor"):
        fn(torch.ones(2, 3, 4, dtype=torch.long), from_logits=True)
    with pytest.raises(DropkitTypeError, match="`samples` to be a torch.Tensor"):
        fn(np.ones((2, 3, 4)), from_logits=True)


@pytest.mark.parametrize("fn", CLASS_FNS)
def test_probabilities_are_validated(fn) -> None:
    logits = _logits()
    with pytest.raises(DropkitValueError, match="`samples` to be probabilities in"):
        fn(logits, from_logits=False)  # forgot from_logits=True
    probs = torch.softmax(logits, dim=-1)
    with pytest.raises(DropkitValueError, match="`samples` to be probabilities summing to 1"):
        fn(probs * 0.9, from_logits=False)
    # within tolerance is accepted
    fn(probs * (1 + 1e-6), from_logits=False)


# ---------------------------------------------------------------------------------------------
# regression
# ---------------------------------------------------------------------------------------------


def _reg(s: int = 9, shape: tuple[int, ...] = (5,), seed: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(s, *shape, generator=g, dtype=torch.float64)
    log_var = 0.5 * torch.randn(s, *shape, generator=g, dtype=torch.float64)
    target = torch.randn(*shape, generator=g, dtype=torch.float64)
    return means, log_var, target


@pytest.mark.parametrize("shape", [(5,), (4, 3)])
def test_variance_split_matches_numpy(shape: tuple[int, ...]) -> None:
    means, log_var, _ = _reg(shape=shape)
    m, lv = means.numpy(), log_var.numpy()
    np.testing.assert_allclose(predictive_mean(means).numpy(), m.mean(0), atol=1e-14)
    np.testing.assert_allclose(epistemic_variance(means).numpy(), m.var(0, ddof=0), atol=1e-14)
    np.testing.assert_allclose(aleatoric_variance(means, log_var=log_var).numpy(),
                               np.exp(lv).mean(0), atol=1e-14)
    np.testing.assert_allclose(aleatoric_variance(means, tau=4.0).numpy(),
                               np.full(shape, 0.25), atol=0)
    np.testing.assert_allclose(aleatoric_variance(means).numpy(), np.zeros(shape), atol=0)
    np.testing.assert_allclose(total_variance(means, log_var=log_var).numpy(),
                               m.var(0) + np.exp(lv).mean(0), atol=1e-14)
    np.testing.assert_allclose(total_variance(means, tau=2.0).numpy(), m.var(0) + 0.5, atol=1e-14)


def test_total_variance_is_mixture_variance() -> None:
    # law of total variance: the variance of the equal-weight mixture of N(mu_s, var_s)
    means, log_var, _ = _reg(s=5, shape=(3,))
    mu, var = means.numpy(), np.exp(log_var.numpy())
    second_moment = (var + mu**2).mean(0)
    mixture_var = second_moment - mu.mean(0) ** 2
    np.testing.assert_allclose(total_variance(means, log_var=log_var).numpy(), mixture_var,
                               rtol=1e-12)


@pytest.mark.parametrize("shape", [(6,), (4, 2)])
def test_mixture_ll_matches_scipy(shape: tuple[int, ...]) -> None:
    from scipy.special import logsumexp
    from scipy.stats import norm

    means, log_var, target = _reg(s=12, shape=shape)
    m, lv, y = means.numpy(), log_var.numpy(), target.numpy()
    s = m.shape[0]
    ref_het = logsumexp(norm.logpdf(y[None], loc=m, scale=np.exp(0.5 * lv)), axis=0) - np.log(s)
    got = gaussian_mixture_log_likelihood(means, target, log_var=log_var)
    np.testing.assert_allclose(got.numpy(), ref_het, rtol=1e-12)
    tau = 3.7
    ref_hom = logsumexp(norm.logpdf(y[None], loc=m, scale=tau**-0.5), axis=0) - np.log(s)
    got = gaussian_mixture_log_likelihood(means, target, tau=tau)
    np.testing.assert_allclose(got.numpy(), ref_hom, rtol=1e-12)
    # Gal & Ghahramani's UCI formula, written out
    gal = (logsumexp(-0.5 * tau * (y[None] - m) ** 2, axis=0) - np.log(s)
           - 0.5 * np.log(2 * np.pi) + 0.5 * np.log(tau))
    np.testing.assert_allclose(got.numpy(), gal, rtol=1e-12)


def test_mixture_ll_far_target_is_finite() -> None:
    means = torch.zeros(3, 2)
    target = torch.tensor([1e3, -1e3])
    ll = gaussian_mixture_log_likelihood(means, target, tau=100.0)
    assert torch.isfinite(ll).all()
    expected = -0.5 * 100.0 * 1e6 - 0.5 * math.log(2 * math.pi) + 0.5 * math.log(100.0)
    assert ll[0].item() == pytest.approx(expected, rel=1e-6)


def test_single_sample_mixture_is_gaussian() -> None:
    means, log_var, target = _reg(s=1, shape=(4,))
    dist = torch.distributions.Normal(means[0], (0.5 * log_var[0]).exp())
    torch.testing.assert_close(
        gaussian_mixture_log_likelihood(means, target, log_var=log_var), dist.log_prob(target)
    )


REG_FNS = [predictive_mean, epistemic_variance, aleatoric_variance, total_variance]


@pytest.mark.parametrize("fn", REG_FNS)
def test_bad_regression_means(fn) -> None:
    with pytest.raises(DropkitValueError, match="`means` to be a tensor with at least 2 dims"):
        fn(torch.zeros(5))
    with pytest.raises(DropkitValueError, match="`means` to be S >= 1 samples"):
        fn(torch.zeros(0, 5))
    with pytest.raises(DropkitValueError, match="`means` to be finite values"):
        fn(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(DropkitTypeError, match="`means` to be a floating-point tensor"):
        fn(torch.zeros(2, 3, dtype=torch.int64))


def test_tau_and_log_var_errors() -> None:
    means, log_var, target = _reg()
    with pytest.raises(DropkitValueError, match="exactly one of `tau`, `log_var`"):
        gaussian_mixture_log_likelihood(means, target)
    with pytest.raises(DropkitValueError, match="exactly one of `tau`, `log_var`"):
        gaussian_mixture_log_likelihood(means, target, tau=1.0, log_var=log_var)
    with pytest.raises(DropkitValueError, match="exactly one of `tau`, `log_var`"):
        aleatoric_variance(means, tau=1.0, log_var=log_var)
    with pytest.raises(DropkitValueError, match="`tau` to be a positive finite float"):
        aleatoric_variance(means, tau=0.0)
    with pytest.raises(DropkitValueError, match="`tau` to be a positive finite float"):
        gaussian_mixture_log_likelihood(means, target, tau=float("inf"))
    with pytest.raises(DropkitTypeError, match="`tau` to be a positive float"):
        total_variance(means, tau="1")
    with pytest.raises(DropkitValueError, match=r"`log_var` to be a tensor of shape \(9, 5\)"):
        aleatoric_variance(means, log_var=log_var[:, :3])
    bad = log_var.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(DropkitValueError, match="`log_var` to be finite values"):
        total_variance(means, log_var=bad)


def test_target_validation() -> None:
    means, _, target = _reg()
    with pytest.raises(DropkitValueError, match=r"`target` to be a tensor of shape \(5,\)"):
        gaussian_mixture_log_likelihood(means, target[:4], tau=1.0)
    with pytest.raises(DropkitValueError, match="`target` to be finite values, but got 1 NaN"):
        gaussian_mixture_log_likelihood(means, torch.tensor([float("nan"), 0, 0, 0, 0]), tau=1.0)
    with pytest.raises(DropkitTypeError, match="`target` to be a torch.Tensor"):
        gaussian_mixture_log_likelihood(means, [0.0] * 5, tau=1.0)
    with pytest.raises(DropkitTypeError, match="`target` to be a floating-point tensor"):
        gaussian_mixture_log_likelihood(means, torch.zeros(5, dtype=torch.long), tau=1.0)


def test_docstring_examples_run() -> None:
    result = doctest.testmod(dropkit.uncertainty)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("from_logits", [True, False])
def test_one_pass_measures_equal_the_six_functions(from_logits: bool) -> None:
    logits = _logits(s=9, b=4, c=5, seed=11).float()
    samples = logits if from_logits else torch.softmax(logits, dim=-1)
    both = dropkit.uncertainty.classification_measures(samples, from_logits=from_logits)
    for key, fn in zip(("mean", "predictive_entropy", "expected_entropy", "mutual_information",
                        "variation_ratio", "class_std"), CLASS_FNS, strict=True):
        assert torch.equal(both[key], fn(samples, from_logits=from_logits)), key
    naive = _naive_class(logits.double())
    np.testing.assert_allclose(both["mutual_information"].double().numpy(), naive["MI"],
                               atol=1e-6)
