"""Each defect of issue 11 (items 4 and 10) on the streaming and pure paths, with a value check.

Every test here but the last failed on the code before `dropkit.measures` (checked once on
that commit); the last one pins down what "finite" means when the true value is out of range.
"""

from __future__ import annotations

import math

import pytest
import torch

from dropkit import uncertainty as U
from dropkit.errors import DropkitTypeError, DropkitValueError
from dropkit.measures import ClassificationStream, RegressionStream

LN2 = math.log(2.0)


def test_stream_rejects_logits_given_as_probabilities() -> None:
    logits = torch.tensor([[[2.0, -1.0, 0.5]], [[0.1, 0.2, -3.0]]])
    stream = ClassificationStream(from_logits=False)
    with pytest.raises(DropkitValueError, match="`chunk` to be probabilities in"):
        stream.update(logits)  # was: NaN entropy and MI


def test_stream_rejects_probabilities_summing_to_half() -> None:
    half = torch.full((3, 2, 4), 0.125)  # rows sum to 0.5
    with pytest.raises(DropkitValueError, match="`chunk` to be probabilities summing to 1"):
        ClassificationStream(from_logits=False).update(half)


def test_stream_rejects_target_of_the_wrong_shape() -> None:
    stream = RegressionStream(tau=1.0, target=torch.zeros(4))
    with pytest.raises(DropkitValueError, match=r"`target` to be a tensor of shape \(4, 1\)"):
        stream.update(torch.zeros(5, 4, 1))  # was: a (4, 4) log-likelihood by broadcasting


def test_stream_rejects_nan_target() -> None:
    with pytest.raises(DropkitValueError, match="`target` to be finite values, but got 1 NaN"):
        RegressionStream(tau=1.0, target=torch.tensor([0.0, float("nan")]))


@pytest.mark.parametrize("tau, error", [(math.inf, DropkitValueError), (0.0, DropkitValueError),
                                        (-2.0, DropkitValueError), (math.nan, DropkitValueError),
                                        (True, DropkitTypeError), ("1", DropkitTypeError)])
def test_stream_constructor_rejects_bad_tau(tau: object, error: type) -> None:
    with pytest.raises(error, match="`tau` to be a positive"):
        RegressionStream(tau=tau)  # type: ignore[arg-type]


def test_stream_rejects_chunks_of_another_shape() -> None:
    stream = ClassificationStream(from_logits=True)
    stream.update(torch.zeros(2, 3, 4))
    with pytest.raises(DropkitValueError, match=r"`chunk` to be samples of shape \(c, 3, 4\)"):
        stream.update(torch.zeros(2, 3, 5))


def _extreme() -> torch.Tensor:
    big = 3e38  # close to float32's max (3.4e38)
    # (S=2, B=2, C=3): row 0, two confident samples that disagree: H = ln 2, E[H] = 0, MI = ln 2;
    # row 1, each sample splits evenly between two classes: H = E[H] = ln 2, MI = 0.
    return torch.tensor([[[big, -big, -big], [big, big, -big]],
                         [[-big, big, -big], [big, big, -big]]], dtype=torch.float32)


def test_extreme_float32_logits_give_finite_hand_values() -> None:
    logits = _extreme()
    want = {"predictive_entropy": [LN2, LN2], "expected_entropy": [0.0, LN2],
            "mutual_information": [LN2, 0.0]}
    stream = ClassificationStream(from_logits=True)
    stream.update(logits[:1])
    stream.update(logits[1:])
    streamed = stream.measures()
    for name, values in want.items():
        expected = torch.tensor(values)
        torch.testing.assert_close(getattr(U, name)(logits, from_logits=True), expected,
                                   atol=1e-6, rtol=0, msg=name)  # was NaN (pure path)
        torch.testing.assert_close(streamed[name], expected, atol=1e-6, rtol=0, msg=name)


def test_extreme_logits_equal_float64_reference_on_rescaled_inputs() -> None:
    # softmax of z and of z * 1e-36 agree when every gap is either 0 or enormous
    logits = _extreme()
    rescaled = logits.double() * 1e-36  # gaps of 300 or 600: e^-300 is 0 to float64 precision
    for name in ("expected_entropy", "mutual_information", "predictive_entropy"):
        got = getattr(U, name)(logits, from_logits=True).double()
        ref = getattr(U, name)(rescaled, from_logits=True)
        torch.testing.assert_close(got, ref, atol=1e-6, rtol=0, msg=name)


def test_mixture_likelihood_with_tiny_float32_variance() -> None:
    # log_var = -100: exp(100) overflows float32, and the old default path gave NaN
    means = torch.tensor([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]])  # (S=3, B=2)
    target = torch.zeros(2)
    log_var = torch.full((3, 2), -100.0)
    # two of three components sit exactly on the target; the third has density e^(-e^100/2)
    ref = 50.0 - 0.5 * math.log(2 * math.pi) + math.log(2 / 3)
    got = U.gaussian_mixture_log_likelihood(means, target, log_var=log_var)
    stream = RegressionStream(tau=None, target=target)
    stream.update(means[:2], log_var[:2])
    stream.update(means[2:], log_var[2:])
    streamed = stream.measures()["target_log_likelihood"]
    assert got.dtype == torch.float32 and streamed is not None
    torch.testing.assert_close(got, torch.full((2,), ref), atol=1e-5, rtol=0)
    torch.testing.assert_close(streamed, got, atol=0, rtol=0)


def test_mixture_likelihood_far_from_tiny_variance_is_minus_infinity_not_nan() -> None:
    # the true value, -(1/2) e^100 ~ -1.3e43, is below float32's range: -inf is its rounding
    ll = U.gaussian_mixture_log_likelihood(torch.ones(2, 1), torch.zeros(1),
                                           log_var=torch.full((2, 1), -100.0))
    assert ll.item() == -math.inf
    ll64 = U.gaussian_mixture_log_likelihood(torch.ones(2, 1, dtype=torch.float64),
                                             torch.zeros(1, dtype=torch.float64),
                                             log_var=torch.full((2, 1), -100.0,
                                                                dtype=torch.float64))
    assert ll64.item() == pytest.approx(-0.5 * math.exp(100) + 50 - 0.5 * math.log(2 * math.pi),
                                        rel=1e-12)
