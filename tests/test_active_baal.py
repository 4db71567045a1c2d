"""BALD and BatchBALD against baal 2.1 (samples last there, ``(B, C, S)``) on the same samples.

baal is an optional peer: installed with ``pip install --no-deps baal==2.1.0 'structlog<23'``
(its declared Jupyter dependency is not needed to import the heuristics). Skipped without it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dropkit.active import bald, batchbald

heuristics = pytest.importorskip(
    "baal.active.heuristics",
    reason="baal not installed (pip install --no-deps baal==2.1.0 'structlog<23' pillow)")


def _probs(s: int, b: int, c: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(2.5 * torch.randn(s, b, c, generator=g, dtype=torch.float64), -1)


def test_bald_equals_baal() -> None:
    p = _probs(20, 50, 10, seed=0)
    theirs = heuristics.BALD().compute_score(p.permute(1, 2, 0).numpy())  # (B, C, S)
    np.testing.assert_allclose(bald(p, from_logits=False).numpy(), theirs, rtol=0, atol=1e-12)


def test_batchbald_picks_and_values_equal_baal_s_sampled_estimate() -> None:
    p = _probs(8, 12, 3, seed=1)
    k = 4
    ours = batchbald(p, k, from_logits=False)  # exact: 3^4 configurations
    torch.manual_seed(0)  # baal draws its configurations from torch's global RNG
    theirs = heuristics.BatchBALD(num_samples=k - 1, num_draw=4000).compute_score(
        p.permute(1, 2, 0).numpy())
    assert set(np.flatnonzero(theirs).tolist()) == set(ours.indices.tolist())
    # baal stores H[y_A, y_i] - E H[y_i] for pick i; ours is a(A + {i}) = H[y_A, y_i] - sum E H
    cond = (-(p * p.log()).sum(-1).mean(0))[ours.indices]
    for n in range(k):
        want = float(ours.scores[n] + cond[:n].sum())
        assert theirs[int(ours.indices[n])] == pytest.approx(want, abs=0.02)
