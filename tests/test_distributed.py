"""Ray pool scoring equals single-process scoring bitwise (local 2-CPU cluster)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dropkit.active import score_pool, top_k

ray = pytest.importorskip("ray", reason="Ray not installed (pip install 'dropkit[ray]')")


@pytest.fixture()
def cluster(ray_cluster):
    """The session's local cluster (tests/conftest.py)."""
    return ray_cluster


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.4), nn.Linear(32, 5)).eval()


def _local(model: nn.Module, x: torch.Tensor, seed: int):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the actors run 1 thread: bitwise equality needs the same here
    try:
        return score_pool(model, x, samples=12, seed=seed, chunk=40)
    finally:
        torch.set_num_threads(before)


def _assert_same(remote, local, k: int) -> None:
    for name, col in local.columns.items():
        assert torch.equal(remote[name], col), name
    assert torch.equal(remote.top_k, top_k(local["bald"], k))


def test_ray_scores_equal_single_process_bitwise(cluster) -> None:
    from dropkit.distributed import RayScorer

    x = torch.randn(250, 6, generator=torch.Generator().manual_seed(1))
    local7, local8 = _local(_model(), x, 7), _local(_model(), x, 8)
    assert not torch.equal(local7["bald"], local8["bald"])  # the seed matters: equality earned
    # A Ray Dataset of examples, re-chunked in order: 7 chunks over 2 actors, the last of 10
    # rows. (.npy paths take load_array, tested with the CLI.)
    examples = ray.data.from_items([{"x": row} for row in x.numpy()])
    with RayScorer(_model(), samples=12, chunk=40, workers=2) as scorer:
        ids = ray.get([a.identity.remote() for a in scorer._actors])
        _assert_same(scorer.score(examples, seed=7, k=15), local7, 15)
        # A second round on the same actors and model objects (nothing restarted or resent).
        _assert_same(scorer.score(x.numpy(), seed=8, k=15), local8, 15)
        assert ray.get([a.identity.remote() for a in scorer._actors]) == ids
        assert len({pid for pid, _ in ids}) == 2  # two actor processes, not one
        # Retrained weights reach the actors through update(): the scores follow them.
        retrained = _model(seed=3)
        scorer.update(retrained)
        _assert_same(scorer.score(x, seed=7, k=15), _local(retrained, x, 7), 15)
        assert ray.get([a.identity.remote() for a in scorer._actors]) == ids


def test_score_dataset_is_one_scorer_call(cluster) -> None:
    from dropkit.distributed import score_dataset

    x = torch.randn(90, 6, generator=torch.Generator().manual_seed(2))
    remote = score_dataset(_model(), x, samples=12, seed=5, chunk=40, k=4, workers=2)
    _assert_same(remote, _local(_model(), x, 5), 4)


def test_bad_pools_are_named_before_any_ray_work(tmp_path) -> None:
    from dropkit.distributed import RayScorer, to_chunks
    from dropkit.errors import DropkitTypeError, DropkitValueError

    with pytest.raises(DropkitValueError, match="`data`.*existing .npy or .pt file"):
        to_chunks(tmp_path / "missing.npy")
    with pytest.raises(DropkitTypeError, match="`data`.*but got int"):
        to_chunks(3)
    with pytest.raises(DropkitValueError, match="`data`.*non-empty pool"):
        to_chunks(np.zeros((0, 4)))
    scorer = RayScorer(_model())
    with pytest.raises(DropkitValueError, match="`data`.*non-empty pool"):
        scorer.score(np.zeros((0, 6)))
    assert scorer._actors == []  # the error came before any actor started
