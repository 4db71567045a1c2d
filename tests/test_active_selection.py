"""Top-k and the stochastic batch rules of Kirsch et al. 2023: ties, seeds and their laws."""

from __future__ import annotations

import pytest
import torch

from dropkit.active import select, top_k
from dropkit.errors import DropkitValueError


def test_top_k_is_best_first_with_ties_to_the_lower_index() -> None:
    scores = torch.tensor([0.1, 0.5, 0.3, 0.5, 0.0])
    assert top_k(scores, 3).tolist() == [1, 3, 2]


def test_same_generator_state_same_batch_and_no_repeats() -> None:
    scores = torch.rand(200, generator=torch.Generator().manual_seed(0))
    for rule in ("softmax", "power", "softrank"):
        a = select(scores, 20, selection=rule, generator=torch.Generator().manual_seed(5))
        b = select(scores, 20, selection=rule, generator=torch.Generator().manual_seed(5))
        c = select(scores, 20, selection=rule, generator=torch.Generator().manual_seed(6))
        assert torch.equal(a, b) and not torch.equal(a, c)
        assert len(set(a.tolist())) == 20


@pytest.mark.parametrize("rule,law", [
    ("softmax", lambda s, beta: torch.exp(beta * s)),
    ("power", lambda s, beta: s ** beta),
    ("softrank", lambda s, beta: torch.tensor([2.0, 3.0, 1.0]) ** -beta),
])
def test_first_draw_follows_the_rule_s_probabilities(rule, law) -> None:
    scores = torch.tensor([0.5, 0.2, 1.0], dtype=torch.float64)  # ranks 2, 3, 1
    beta = 2.0
    g = torch.Generator().manual_seed(0)
    n = 4000
    counts = torch.zeros(3)
    for _ in range(n):
        counts[int(select(scores, 1, selection=rule, beta=beta, generator=g)[0])] += 1
    want = law(scores, beta).float()
    want = want / want.sum()
    # binomial standard error at most sqrt(0.25 / n) = 0.008; allow 4 of them
    torch.testing.assert_close(counts / n, want, atol=0.032, rtol=0)


def test_bad_input_is_named() -> None:
    with pytest.raises(DropkitValueError, match="`scores`.*non-negative"):
        select(torch.tensor([0.1, -0.2]), 1, selection="power")
    with pytest.raises(DropkitValueError, match="`k`.*at most the pool size 2"):
        top_k(torch.tensor([0.1, 0.2]), 3)
    with pytest.raises(DropkitValueError, match="`selection`"):
        select(torch.tensor([0.1, 0.2]), 1, selection="greedy")
