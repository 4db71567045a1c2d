"""AUROC / AUPR vs scikit-learn (with ties); risk-coverage and AURC vs naive loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from dropkit.errors import DropkitTypeError, DropkitValueError
from dropkit.metrics import aupr, aurc, auroc, risk_coverage_curve


def _scores(n: int, seed: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.3
    labels[:2] = [True, False]  # both classes present
    scores = rng.normal(size=n) + labels
    if ties:
        scores = np.round(scores, 0)  # a handful of distinct values: heavy ties
    return scores, labels


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_aupr_match_sklearn(ties: bool, seed: int) -> None:
    scores, labels = _scores(257, seed, ties)
    assert auroc(torch.from_numpy(scores), torch.from_numpy(labels)) == pytest.approx(
        roc_auc_score(labels, scores), abs=1e-12)
    assert aupr(scores, labels.astype(np.int64)) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-12)


def test_hand_values() -> None:
    labels = torch.tensor([0, 1, 0, 1])
    assert auroc(torch.tensor([0.1, 0.9, 0.2, 0.8]), labels) == 1.0
    assert auroc(torch.tensor([0.9, 0.1, 0.8, 0.2]), labels) == 0.0
    assert auroc(torch.ones(4), labels) == 0.5  # all tied: chance
    assert aupr(torch.ones(4), labels) == 0.5  # all tied: precision = prevalence
    # ranking 1, 0, 1, 0: AP = 1/2 * 1 + 1/2 * 2/3
    assert aupr(torch.tensor([4.0, 3.0, 2.0, 1.0]), torch.tensor([1, 0, 1, 0])) == pytest.approx(
        0.5 + 1 / 3)


def _naive_rc(conf: list[float], correct: list[bool]):
    thresholds = sorted(set(conf), reverse=True)
    cov, risk = [], []
    for t in thresholds:
        kept = [k for c, k in zip(conf, correct, strict=True) if c >= t]
        cov.append(len(kept) / len(conf))
        risk.append(sum(not k for k in kept) / len(kept))
    return thresholds, cov, risk


@pytest.mark.parametrize("ties", [False, True])
def test_risk_coverage_matches_naive_loop(ties: bool) -> None:
    conf, correct = _scores(120, 5, ties)
    curve = risk_coverage_curve(conf, correct)
    thr, cov, risk = _naive_rc(conf.tolist(), correct.tolist())
    np.testing.assert_allclose(curve.threshold.numpy(), thr)
    np.testing.assert_allclose(curve.coverage.numpy(), cov, rtol=1e-12)
    np.testing.assert_allclose(curve.risk.numpy(), risk, rtol=1e-12)
    area = sum((c - p) * r for c, p, r in zip(cov, [0.0, *cov[:-1]], risk, strict=True))
    assert aurc(conf, correct) == pytest.approx(area, rel=1e-12)


def test_aurc_without_ties_is_mean_selective_risk() -> None:
    conf, correct = _scores(99, 6, ties=False)
    order = np.argsort(-conf)
    errors = ~correct[order]
    mean_risk = np.mean([errors[: n + 1].mean() for n in range(len(conf))])
    assert aurc(conf, correct) == pytest.approx(mean_risk, rel=1e-12)


def test_aurc_hand_values() -> None:
    # perfect ranking with one error out of four: risks 0, 0, 0, 1/4
    assert aurc(torch.tensor([4.0, 3.0, 2.0, 1.0]), torch.tensor([1, 1, 1, 0])) == 1 / 16
    # all correct or all wrong are fine for AURC (no class requirement)
    assert aurc(torch.rand(5), torch.ones(5, dtype=torch.bool)) == 0.0
    assert aurc(torch.rand(5), torch.zeros(5)) == 1.0


@pytest.mark.parametrize("fn", [auroc, aupr])
def test_bad_detection_input(fn) -> None:
    s = torch.randn(6)
    with pytest.raises(DropkitValueError, match="`labels` to be both classes"):
        fn(s, torch.ones(6))
    with pytest.raises(DropkitValueError, match="`labels` to be both classes"):
        fn(s, torch.zeros(6, dtype=torch.bool))
    with pytest.raises(DropkitValueError, match=r"`labels` to be a \(B,\) tensor with B = 6"):
        fn(s, torch.tensor([0, 1, 0]))
    with pytest.raises(DropkitValueError, match=r"`labels` to be binary values"):
        fn(s, torch.tensor([0, 1, 2, 0, 1, 0]))
    with pytest.raises(DropkitValueError, match=r"`scores` to be a \(B,\) tensor"):
        fn(s[None], torch.tensor([0, 1, 0, 1, 0, 1]))
    bad = s.clone()
    bad[0] = float("nan")
    with pytest.raises(DropkitValueError, match="`scores` to be finite values, but got 1 NaN"):
        fn(bad, torch.tensor([0, 1, 0, 1, 0, 1]))
    with pytest.raises(DropkitValueError, match="`scores` to be a non-empty tensor"):
        fn(torch.zeros(0), torch.zeros(0))
    with pytest.raises(DropkitTypeError, match="`scores` to be a floating-point tensor"):
        fn(torch.arange(6), torch.tensor([0, 1, 0, 1, 0, 1]))


def test_bad_risk_coverage_input() -> None:
    with pytest.raises(DropkitValueError, match=r"`correct` to be a \(B,\) tensor with B = 4"):
        aurc(torch.rand(4), torch.ones(3))
    with pytest.raises(DropkitValueError, match="`confidence` to be finite values"):
        risk_coverage_curve(torch.tensor([0.1, float("inf")]), torch.ones(2))
    with pytest.raises(DropkitValueError, match="`correct` to be binary values"):
        aurc(torch.rand(2), torch.tensor([0.5, 1.0]))
