"""dropkit.active scores against naive float64 loops and streamed predictions."""

from __future__ import annotations

import math

import pytest
import torch

from dropkit import MCDropout
from dropkit.active import bald, from_prediction, margin, mean_std, score, variation_ratio
from dropkit.errors import DropkitValueError


def _logits(s: int = 9, b: int = 6, c: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(s, b, c, generator=g, dtype=torch.float64)


def _naive_probs(z: torch.Tensor) -> list[list[list[float]]]:
    out = []
    for zs in z.tolist():
        rows = []
        for row in zs:
            m = max(row)
            e = [math.exp(v - m) for v in row]
            rows.append([v / sum(e) for v in e])
        out.append(rows)
    return out


def test_bald_is_mutual_information_computed_naively() -> None:
    z = _logits()
    p = _naive_probs(z)
    s, b, c = z.shape
    for i in range(b):
        pbar = [sum(p[t][i][j] for t in range(s)) / s for j in range(c)]
        h = -sum(q * math.log(q) for q in pbar)
        eh = sum(-sum(q * math.log(q) for q in p[t][i]) for t in range(s)) / s
        assert float(bald(z, from_logits=True)[i]) == pytest.approx(h - eh, abs=1e-12)


def test_margin_mean_std_and_variation_ratio_by_hand() -> None:
    probs = torch.tensor([[[0.7, 0.2, 0.1]], [[0.1, 0.6, 0.3]]], dtype=torch.float64)
    # mean (0.4, 0.4, 0.2): top two tie, margin 0; std per class (0.3, 0.2, 0.1)
    assert float(margin(probs, from_logits=False)[0]) == pytest.approx(0.0, abs=1e-12)
    assert float(mean_std(probs, from_logits=False)[0]) == pytest.approx(0.2, abs=1e-12)
    assert float(variation_ratio(probs, from_logits=False)[0]) == pytest.approx(0.5)
    sure = torch.tensor([[[0.9, 0.05, 0.05]]], dtype=torch.float64)
    assert float(margin(sure, from_logits=False)[0]) == pytest.approx(-0.85, abs=1e-12)


@pytest.mark.parametrize("measure", ["bald", "max_entropy", "variation_ratio", "mean_std",
                                     "margin"])
def test_streamed_prediction_gives_the_same_scores_as_samples(measure: str) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 32), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                torch.nn.Linear(32, 3)).double()
    x = torch.randn(40, 5, dtype=torch.float64)
    kept = MCDropout(model, samples=24, seed=3, progress=False, chunk=5,
                     strategy="stacked").predict(x)
    streamed = MCDropout(model, samples=24, seed=3, progress=False, chunk=5,
                         strategy="stacked", keep_samples=False).predict(x)
    assert kept.samples is not None
    want = score(kept.samples, measure, from_logits=True)
    torch.testing.assert_close(from_prediction(streamed, measure), want, atol=1e-10, rtol=0)


def test_random_is_reproducible_and_bad_names_are_rejected() -> None:
    z = _logits()
    a = score(z, "random", from_logits=True, generator=torch.Generator().manual_seed(1))
    b = score(z, "random", from_logits=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (6,) and bool(((a >= 0) & (a < 1)).all())
    with pytest.raises(DropkitValueError, match="`measure`.*'bald'.*but got 'bold'"):
        score(z, "bold", from_logits=True)
