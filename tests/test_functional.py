"""dropkit.functional.dropout and its module twin dropkit.nn.Dropout."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dropkit
from dropkit.functional import dropout
from dropkit.nn import Dropout

probs = st.floats(min_value=0.05, max_value=0.9)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@settings(max_examples=25, deadline=None)
@given(p=probs, seed=st.integers(0, 2**31 - 1))
def test_keep_rate_within_binomial_tolerance(p, seed):
    n = 20_000
    y = dropout(torch.ones(n), p, active=True, generator=gen(seed))
    kept = (y != 0).double().mean().item()
    # 5 binomial standard deviations: a false failure has probability < 1e-6 per example.
    assert abs(kept - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)


@settings(max_examples=20, deadline=None)
@given(p=probs, seed=st.integers(0, 2**31 - 1))
def test_inverted_is_unbiased_and_classic_matches_in_expectation(p, seed):
    x = torch.linspace(-2, 3, 50, dtype=torch.float64)
    reps = 4000
    xs = x.expand(reps, -1)
    inv = dropout(xs, p, active=True, scaling="inverted", generator=gen(seed)).mean(0)
    cla = dropout(xs, p, active=True, scaling="classic", generator=gen(seed)).mean(0)
    # per-coordinate sd of the mean of inverted output is |x| sqrt(p/(1-p)/reps)
    tol = 6 * x.abs() * math.sqrt(p / (1 - p) / reps) + 1e-12
    assert torch.all((inv - x).abs() <= tol)
    # classic active = (1-p) * inverted active with the same masks, exactly
    torch.testing.assert_close(cla, inv * (1 - p))
    # and classic's test-time transform is its expectation
    classic_eval = dropout(x, p, active=False, scaling="classic")
    torch.testing.assert_close(classic_eval, x * (1 - p))


@pytest.mark.parametrize("scaling", ["inverted", "classic"])
def test_inactive_and_p_zero(scaling):
    x = torch.randn(4, 5)
    assert torch.equal(dropout(x, 0.0, active=True, scaling=scaling), x)
    assert torch.equal(dropout(x, 0.0, active=False, scaling=scaling), x)
    if scaling == "inverted":
        assert dropout(x, 0.7, active=False) is x


def test_kept_units_are_scaled_by_inverse_keep_rate():
    x = torch.full((1000,), 3.0)
    y = dropout(x, 0.25, active=True, generator=gen(1))
    assert set(torch.unique(y).tolist()) == {0.0, 4.0}


@settings(max_examples=15, deadline=None)
@given(p=probs, seed=st.integers(0, 2**31 - 1), scaling=st.sampled_from(["inverted", "classic"]))
def test_module_twin_agrees_with_function(p, seed, scaling):
    x = torch.randn(8, 16)
    m = Dropout(p, scaling=scaling, generator=gen(seed))
    assert torch.equal(m(x), dropout(x, p, active=True, scaling=scaling, generator=gen(seed)))
    m.eval()
    assert torch.equal(m(x), dropout(x, p, active=False, scaling=scaling))


def test_matches_torch_dropout_statistics_for_inverted():
    # Same convention as torch.nn.Dropout: identical set of output values.
    x = torch.full((10_000,), 2.0)
    ours = dropout(x, 0.5, active=True, generator=gen(0))
    torch.manual_seed(0)
    theirs = torch.nn.functional.dropout(x, 0.5, training=True)
    assert set(torch.unique(ours).tolist()) == set(torch.unique(theirs).tolist())


def test_gradient_flows_only_through_kept_units():
    x = torch.randn(200, requires_grad=True)
    y = dropout(x, 0.4, active=True, generator=gen(3))
    y.sum().backward()
    kept = y.detach() != 0
    torch.testing.assert_close(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.6))
    assert torch.all(x.grad[~kept] == 0)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_p(p):
    with pytest.raises(dropkit.DropkitValueError, match=r"argument `p` to be a float in \[0, 1\)"):
        dropout(torch.ones(3), p, active=True)
    with pytest.raises(dropkit.DropkitError, match="`p`"):
        Dropout(p)


def test_bad_scaling_and_types():
    with pytest.raises(ValueError, match=r"`scaling` to be one of 'inverted', 'classic'.*'weird'"):
        dropout(torch.ones(3), 0.5, active=True, scaling="weird")
    with pytest.raises(TypeError, match=r"`x` to be a torch.Tensor, but got list"):
        dropout([1.0, 2.0], 0.5, active=True)
    with pytest.raises(TypeError, match=r"`p` to be a float"):
        dropout(torch.ones(3), "0.5", active=True)
