"""The UCI benchmark's groups of splits as Ray tasks (`dropkit bench uci --ray`): every split's
result bitwise equal to a run here (bostonHousing from ../shared/uci, tiny settings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dropkit.bench.uci_config import UCIConfig
from dropkit.bench.uci_protocol import run_uci
from dropkit.cli import main
from dropkit.datasets.uci import load_uci
from tests.shared_data import SHARED, needs_shared

pytest.importorskip("ray", reason="Ray not installed (pip install 'dropkit[ray]')")

# 3 groups of one split: three independent jobs over the cluster's 2 CPUs
FLAGS = ["--quick", "--epochs", "2", "--mc-samples", "20", "--n-splits", "3",
         "--splits-per-batch", "1", "--threads", "1"]


@needs_shared
def test_bench_uci_on_ray_equals_a_local_run_split_by_split(ray_cluster, tmp_path: Path,
                                                            capsys) -> None:
    config = UCIConfig.quick(epochs=2, mc_samples=20, n_splits=3, splits_per_batch=1)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the Ray tasks run with --threads 1: the same here
    try:
        local = run_uci(load_uci("bostonHousing", SHARED, n_splits=3), config)
    finally:
        torch.set_num_threads(before)
    out = tmp_path / "ray"
    assert main(["bench", "uci", "--root", str(SHARED), "--datasets", "bostonHousing",
                 "--out", str(out), "--ray", "--no-progress", *FLAGS]) == 0
    (remote,) = json.loads((out / "uci.json").read_text())["results"]
    assert remote["splits"] == local.to_dict()["splits"]  # every float, bit for bit
    assert [s["split"] for s in remote["splits"]] == [0, 1, 2]  # in split order
    assert len({s["rmse"] for s in remote["splits"]}) == 3  # three different splits' numbers
    assert remote["config"] == local.config.to_dict()


def test_ray_with_workers_is_refused_before_any_work(tmp_path: Path, capsys) -> None:
    out = tmp_path / "r"
    assert main(["bench", "uci", "--datasets", "bostonHousing", "--out", str(out), "--ray",
                 "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "Expected argument `--workers` to be no --workers with --ray" in err
    assert not (out / "uci.json").exists()
