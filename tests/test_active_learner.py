"""The active-learning loop: reproducible under a seed, labels only what it chose, scores by
the measure it was given."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dropkit import MCDropout
from dropkit.active import (
    ActiveConfig,
    ActiveLearner,
    acquire,
    lookup,
    score_pool,
    top_k,
)
from dropkit.active.scoring import derive_seed
from dropkit.errors import DropkitValueError
from dropkit.metrics import accuracy


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: a second intra-op thread only adds contention (5.5 s vs 0.65 s a run on
    two loaded cores, measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    centres = 3.0 * torch.randn(3, 4, generator=g)
    y = torch.randint(3, (260,), generator=g)
    x = centres[y] + torch.randn(260, 4, generator=g)
    return x[:200], y[:200], x[200:], y[200:]


def _fit(x: torch.Tensor, y: torch.Tensor, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3))
    for _ in range(15):  # plain gradient steps: torch.optim's first use costs seconds
        model.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.3 * p.grad
    return model.eval()


def _run(acquisition: str, seed: int, **kw: object):
    x, y, xt, yt = _data()
    asked: list[int] = []

    def oracle(idx: torch.Tensor) -> torch.Tensor:
        asked.extend(idx.tolist())
        return y[idx]

    cfg = ActiveConfig(acquisition=acquisition, batch_size=5, budget=12, samples=8, seed=seed,
                       candidates=20, chunk=64, **kw)
    res = ActiveLearner(_fit, x, oracle, initial=[0, 1, 2, 3], x_test=xt, y_test=yt,
                        config=cfg, progress=False).run()
    return res, asked


@pytest.mark.parametrize("acquisition,kw", [("bald", {}), ("batchbald", {}),
                                             ("max_entropy", {"selection": "power"})])
def test_one_seed_gives_identical_selections_and_only_chosen_labels_are_asked(acquisition, kw):
    a, asked = _run(acquisition, seed=3, **kw)
    b, _ = _run(acquisition, seed=3, **kw)
    assert a.labelled == b.labelled
    assert [r.accuracy for r in a.rounds] == [r.accuracy for r in b.rounds]
    assert [r.labelled for r in a.rounds] == [4, 9, 14, 16]  # the last batch is cut to budget
    assert asked == a.labelled and len(set(a.labelled)) == 16
    assert a.labelled[4:] == [i for r in a.rounds for i in r.acquired]


def test_random_acquisition_depends_on_the_seed() -> None:
    assert _run("random", seed=0)[0].labelled != _run("random", seed=1)[0].labelled


def test_first_round_matches_an_independent_computation() -> None:
    x, y, xt, yt = _data()
    res, _ = _run("bald", seed=5)
    # round 0: the model fitted on the initial labels, evaluated and scored as documented
    model = _fit(x[:4], y[:4], derive_seed(5, 0, 0))
    mean = MCDropout(model, samples=8, seed=derive_seed(5, 0, 1), progress=False).predict(xt).mean
    assert res.rounds[0].accuracy == accuracy(mean, yt, from_logits=False)
    remaining = torch.arange(4, 200)
    scores = score_pool(model, x[remaining], samples=8, seed=derive_seed(derive_seed(5, 0, 2), 0),
                        chunk=64)
    assert res.rounds[0].acquired == remaining[top_k(scores["bald"], 5)].tolist()
    cfg = ActiveConfig(batch_size=5, samples=8, chunk=64)
    assert acquire(model, x[remaining], cfg, seed=derive_seed(5, 0, 2)).add(4).tolist() == \
        res.rounds[0].acquired


def test_bad_settings_are_named() -> None:
    with pytest.raises(DropkitValueError, match="`selection`.*'topk' with acquisition"):
        ActiveConfig(acquisition="batchbald", selection="softmax")
    with pytest.raises(DropkitValueError, match="`acquisition`"):
        ActiveConfig(acquisition="entropy")
    x, y, xt, yt = _data()
    with pytest.raises(DropkitValueError, match="`budget`.*196"):
        ActiveLearner(_fit, x, lookup(y), initial=[0, 1, 2, 3], x_test=xt, y_test=yt,
                      config=ActiveConfig(budget=500))
