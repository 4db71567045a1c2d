"""`dropkit score` in one process: the model from a factory spec, scores equal score_pool."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dropkit.active import score_pool, top_k
from dropkit.cli import main

FACTORY = '''
import torch
from torch import nn

def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 4))

def not_a_model():
    return 3
'''


@pytest.fixture
def factory(tmp_path, monkeypatch):
    (tmp_path / "pool_model.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    return importlib.import_module("pool_model")


def test_scores_and_top_k_equal_score_pool(factory, tmp_path, capsys) -> None:
    x = torch.randn(90, 6, generator=torch.Generator().manual_seed(2))
    np.save(tmp_path / "pool.npy", x.numpy())
    model = factory.build()
    weights = {k: v + 0.1 for k, v in model.state_dict().items()}  # not the factory's weights
    torch.save(weights, tmp_path / "w.pt")
    out = tmp_path / "scores.npz"
    rc = main(["score", "--model", "pool_model:build", "--weights", str(tmp_path / "w.pt"),
               "--data", str(tmp_path / "pool.npy"), "--samples", "8", "--seed", "3",
               "--chunk", "32", "--k", "5", "--measure", "max_entropy", "--out", str(out)])
    assert rc == 0
    model.load_state_dict(weights)
    want = score_pool(model.eval(), x, samples=8, seed=3, chunk=32)
    got = np.load(out)
    for name, col in want.columns.items():
        np.testing.assert_array_equal(got[name], col.numpy())
    best = top_k(want["max_entropy"].double(), 5).tolist()
    rows = [int(line.split()[2]) for line in capsys.readouterr().out.splitlines()
            if line.strip()[:1].isdigit()]
    assert rows == best


def test_bad_model_specs_are_named(factory, tmp_path, capsys) -> None:
    np.save(tmp_path / "pool.npy", np.zeros((3, 6), np.float32))
    for spec, msg in (("pool_model", "pkg.module:factory"),
                      ("pool_model:missing", "importable"),
                      ("pool_model:not_a_model", "returning an nn.Module")):
        assert main(["score", "--model", spec, "--data", str(tmp_path / "pool.npy")]) == 2
        assert msg in capsys.readouterr().err


@pytest.mark.parametrize("flag,address", [(["--ray"], None),
                                          (["--ray", "ray://head:10001"], "ray://head:10001")])
def test_ray_flag_passes_the_address_to_score_dataset(factory, tmp_path, monkeypatch, flag,
                                                      address) -> None:
    import dropkit.distributed as distributed
    from dropkit.distributed.ray_scoring import DistributedScores

    np.save(tmp_path / "pool.npy", np.zeros((4, 6), np.float32))
    seen = {}

    def fake(model, data, **kw):  # the Ray path itself is tested in test_distributed.py
        seen.update(kw, data=data)
        cols = {c: torch.zeros(4) for c in ("bald", "max_entropy", "variation_ratio",
                                            "mean_std", "margin", "random", "prediction")}
        return DistributedScores(cols, torch.tensor([2, 0]), "bald")

    monkeypatch.setattr(distributed, "score_dataset", fake)
    assert main(["score", "--model", "pool_model:build", "--data", str(tmp_path / "pool.npy"),
                 "--k", "2", "--workers", "3", *flag]) == 0
    assert seen["address"] == address and seen["workers"] == 3 and seen["k"] == 2
    assert str(seen["data"]).endswith("pool.npy")
