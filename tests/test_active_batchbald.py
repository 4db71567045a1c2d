"""Greedy BatchBALD against brute-force enumeration of the joint (float64, tiny cases)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from dropkit.active import bald, batchbald


def _probs(s: int, b: int, c: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(2.5 * torch.randn(s, b, c, generator=g, dtype=torch.float64), -1)


def _brute_mi(p: torch.Tensor, batch: list[int]) -> float:
    """I(y_batch; w) by enumerating every label configuration in plain Python."""
    s, _, c = p.shape
    pl = p.tolist()
    h_joint = 0.0
    for ys in itertools.product(range(c), repeat=len(batch)):
        q = sum(math.prod(pl[t][i][y] for i, y in zip(batch, ys, strict=True))
                for t in range(s)) / s
        h_joint -= q * math.log(q)
    cond = sum(-sum(v * math.log(v) for v in pl[t][i]) for t in range(s) for i in batch) / s
    return h_joint - cond


def _brute_greedy(p: torch.Tensor, k: int) -> list[int]:
    chosen: list[int] = []
    for _ in range(k):
        rest = [i for i in range(p.shape[1]) if i not in chosen]
        chosen.append(max(rest, key=lambda i: (_brute_mi(p, chosen + [i]), -i)))
    return chosen


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_batchbald_equals_brute_force(seed: int) -> None:
    p = _probs(s=6, b=7, c=3, seed=seed)
    res = batchbald(p, 4, from_logits=False)
    assert res.exact_steps == 4
    assert res.indices.tolist() == _brute_greedy(p, 4)
    for n in range(1, 5):
        want = _brute_mi(p, res.indices[:n].tolist())
        assert float(res.scores[n - 1]) == pytest.approx(want, abs=1e-10)


def test_first_step_is_bald_and_logits_equal_probabilities() -> None:
    z = 2.0 * torch.randn(8, 10, 4, generator=torch.Generator().manual_seed(4),
                          dtype=torch.float64)
    res = batchbald(z, 3, from_logits=True)
    assert int(res.indices[0]) == int(torch.argmax(bald(z, from_logits=True)))
    assert float(res.scores[0]) == pytest.approx(float(bald(z, from_logits=True).max()))
    again = batchbald(torch.softmax(z, -1), 3, from_logits=False)
    assert torch.equal(res.indices, again.indices)


def _brute_mi_vectorised(p: torch.Tensor, batch: list[int]) -> float:
    """The same enumeration as `_brute_mi`, vectorised over configurations for larger n."""
    s, _, c = p.shape
    configs = torch.tensor(list(itertools.product(range(c), repeat=len(batch))))  # (N, n)
    per_sample = torch.ones(s, configs.shape[0], dtype=torch.float64)
    for col, i in enumerate(batch):
        per_sample = per_sample * p[:, i, configs[:, col]]
    q = per_sample.mean(0)
    cond = -(p[:, batch] * p[:, batch].log()).sum() / s
    return float(-(q * q.log()).sum() - cond)


def test_sampled_estimator_matches_enumeration_within_its_error() -> None:
    p = _probs(s=6, b=10, c=4, seed=7)
    assert _brute_mi_vectorised(p, [0, 3, 5]) == pytest.approx(_brute_mi(p, [0, 3, 5]))
    # 4^5 = 1024 configurations are exact; 4^6 > 2000, so picks 7 and 8 use 2000 sampled ones
    res = batchbald(p, 8, from_logits=False, num_configs=2000,
                    generator=torch.Generator().manual_seed(0))
    assert res.exact_steps == 6
    assert res.indices[:6].tolist() == _brute_greedy(p, 6)
    for n in (7, 8):
        want = _brute_mi_vectorised(p, res.indices[:n].tolist())
        # Monte Carlo error with M = 2000 configurations: sd 0.04 nats (15 seeds); allow 2.5 sd
        assert float(res.scores[n - 1]) == pytest.approx(want, abs=0.1)
    again = batchbald(p, 8, from_logits=False, num_configs=2000,
                      generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.indices, res.indices) and torch.equal(again.scores, res.scores)
