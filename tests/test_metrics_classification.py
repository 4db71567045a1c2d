"""accuracy, negative_log_likelihood, brier_score vs scikit-learn, torch and numpy loops."""

from __future__ import annotations

import math

import pytest
import torch

from dropkit.errors import DropkitError, DropkitTypeError, DropkitValueError
from dropkit.metrics import (
    Accuracy,
    BrierScore,
    NegativeLogLikelihood,
    accuracy,
    brier_score,
    negative_log_likelihood,
)
from dropkit.metrics.classification import NLL_EPS

FNS = [accuracy, negative_log_likelihood, brier_score]


def _data(b: int = 200, c: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(b, c, generator=g, dtype=torch.float64)
    target = torch.randint(0, c, (b,), generator=g)
    return logits, target


def test_accuracy_matches_sklearn() -> None:
    from sklearn.metrics import accuracy_score

    logits, target = _data()
    ref = accuracy_score(target.numpy(), logits.argmax(1).numpy())
    assert accuracy(logits, target, from_logits=True) == ref
    assert accuracy(torch.softmax(logits, 1), target, from_logits=False) == ref
    assert accuracy(logits.numpy(), target.numpy(), from_logits=True) == ref  # numpy accepted


def test_nll_matches_sklearn_and_cross_entropy() -> None:
    from sklearn.metrics import log_loss

    logits, target = _data()
    probs = torch.softmax(logits, 1)
    ce = torch.nn.functional.cross_entropy(logits, target).item()
    assert negative_log_likelihood(logits, target, from_logits=True) == pytest.approx(ce, rel=1e-12)
    ref = log_loss(target.numpy(), probs.numpy(), labels=list(range(5)))
    assert negative_log_likelihood(probs, target, from_logits=False) == pytest.approx(ref, rel=1e-9)


def test_nll_clamps_zero_probability() -> None:
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    target = torch.tensor([1, 0])
    got = negative_log_likelihood(probs, target, from_logits=False)
    assert got == pytest.approx((-math.log(NLL_EPS) + math.log(2)) / 2, rel=1e-12)


def test_nll_extreme_logits_finite() -> None:
    logits = torch.tensor([[1000.0, -1000.0]])
    got = negative_log_likelihood(logits, torch.tensor([1]), from_logits=True)
    assert got == pytest.approx(2000.0)


def test_brier_matches_numpy_loop_and_binary_sklearn() -> None:
    from sklearn.metrics import brier_score_loss

    logits, target = _data(b=50, c=4)
    probs = torch.softmax(logits, 1).numpy()
    ref = 0.0
    for p, y in zip(probs, target.tolist(), strict=True):
        ref += sum((p[c] - (1.0 if c == y else 0.0)) ** 2 for c in range(4))
    ref /= len(probs)
    assert brier_score(logits, target, from_logits=True) == pytest.approx(ref, rel=1e-12)
    # two classes: twice sklearn's one-column (positive class) Brier loss
    logits2, target2 = _data(b=60, c=2, seed=1)
    p2 = torch.softmax(logits2, 1)
    binary = brier_score_loss(target2.numpy(), p2[:, 1].numpy())
    assert brier_score(p2, target2, from_logits=False) == pytest.approx(2 * binary, rel=1e-12)


def test_hand_values() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])
    target = torch.tensor([0, 1])
    assert accuracy(probs, target, from_logits=False) == 0.5
    bs = ((0.3**2 + 0.2**2 + 0.1**2) + (0.3**2 + 0.7**2 + 0.4**2)) / 2
    assert brier_score(probs, target, from_logits=False) == pytest.approx(bs, rel=1e-6)
    nll = -(math.log(0.7) + math.log(0.3)) / 2
    assert negative_log_likelihood(probs, target, from_logits=False) == pytest.approx(nll, 1e-6)


@pytest.mark.parametrize("fn", FNS)
def test_bad_input(fn) -> None:
    logits, target = _data(b=10, c=3)
    with pytest.raises(TypeError):
        fn(logits, target)  # from_logits is required
    with pytest.raises(DropkitTypeError, match="`from_logits` to be a bool"):
        fn(logits, target, from_logits="yes")
    with pytest.raises(DropkitValueError, match=r"`preds` to be a \(B, C\) tensor"):
        fn(logits[0], target, from_logits=True)
    with pytest.raises(DropkitValueError, match="`target` to be a .* with B = 10"):
        fn(logits, target[:9], from_logits=True)
    with pytest.raises(DropkitValueError, match=r"`target` to be class indices in \[0, 3\)"):
        fn(logits, torch.full((10,), 3), from_logits=True)
    with pytest.raises(DropkitValueError, match=r"`target` to be class indices in \[0, 3\)"):
        fn(logits, torch.full((10,), -1), from_logits=True)
    with pytest.raises(DropkitTypeError, match="`target` to be an integer tensor"):
        fn(logits, target.double(), from_logits=True)
    bad = logits.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(DropkitValueError, match="`preds` to be finite values, but got 1 NaN"):
        fn(bad, target, from_logits=True)
    with pytest.raises(DropkitValueError, match="`preds` to be a non-empty tensor"):
        fn(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), from_logits=True)
    with pytest.raises(DropkitValueError, match="`preds` to be probabilities in"):
        fn(logits, target, from_logits=False)
    with pytest.raises(DropkitValueError, match="`preds` to be probabilities summing to 1"):
        fn(torch.full((10, 3), 0.3), target, from_logits=False)
    with pytest.raises(DropkitTypeError, match="`preds` to be a torch.Tensor or numpy.ndarray"):
        fn(logits.tolist(), target, from_logits=True)


@pytest.mark.parametrize(("cls", "fn"), [(Accuracy, accuracy),
                                         (NegativeLogLikelihood, negative_log_likelihood),
                                         (BrierScore, brier_score)])
def test_streaming_objects_equal_functions(cls, fn) -> None:
    logits, target = _data(b=230, seed=7)
    metric = cls(from_logits=True)
    for start in range(0, 230, 64):  # uneven last batch
        metric.update(logits[start:start + 64], target[start:start + 64])
    got = metric.compute()
    assert got.dtype == torch.float64 and got.dim() == 0  # torchmetrics' convention
    assert got.item() == pytest.approx(fn(logits, target, from_logits=True), rel=1e-12)
    probs = torch.softmax(logits[:40], 1)
    again = cls(from_logits=False)
    again.update(probs, target[:40])
    assert again.compute().item() == pytest.approx(fn(probs, target[:40], from_logits=False),
                                                   rel=1e-12)
    metric.reset()
    with pytest.raises(DropkitError, match="before any update"):
        metric.compute()
    with pytest.raises(DropkitTypeError, match="`from_logits` to be a bool"):
        cls(from_logits="no")
    with pytest.raises(DropkitValueError, match="`target` to be class indices"):
        cls(from_logits=True).update(logits, target + 5)
