"""Ray pool scoring equals single-process scoring bitwise (local 2-CPU cluster)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dropkit.active import score_pool, top_k

ray = pytest.importorskip("ray", reason="Ray not installed (pip install 'dropkit[ray]')")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.4), nn.Linear(32, 5)).eval()


def test_ray_scores_equal_single_process_bitwise(cluster) -> None:
    from dropkit.distributed import score_dataset

    x = torch.randn(250, 6, generator=torch.Generator().manual_seed(1))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = score_pool(_model(), x, samples=12, seed=7, chunk=40)
        assert not torch.equal(score_pool(_model(), x, samples=12, seed=8, chunk=40)["bald"],
                               local["bald"])  # the seed matters, so equality below is earned
    finally:
        torch.set_num_threads(before)
    # A Ray Dataset of examples, re-chunked in order: 7 chunks over 2 actors, the last of 10
    # rows. (Arrays and .npy paths take a simpler route, load_array, tested with the CLI; one
    # call here because each starts its own actor pool, about 13 s.)
    examples = ray.data.from_items([{"x": row} for row in x.numpy()])
    remote = score_dataset(_model(), examples, samples=12, seed=7, chunk=40, k=15, workers=2)
    for name, col in local.columns.items():
        assert torch.equal(remote[name], col), name
    assert torch.equal(remote.top_k, top_k(local["bald"], 15))


def test_bad_pools_are_named_before_any_ray_work(tmp_path) -> None:
    from dropkit.distributed import to_chunks
    from dropkit.errors import DropkitTypeError, DropkitValueError

    with pytest.raises(DropkitValueError, match="`data`.*existing .npy or .pt file"):
        to_chunks(tmp_path / "missing.npy")
    with pytest.raises(DropkitTypeError, match="`data`.*but got int"):
        to_chunks(3)
    with pytest.raises(DropkitValueError, match="`data`.*non-empty pool"):
        to_chunks(np.zeros((0, 4)))
