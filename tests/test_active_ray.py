"""`ActiveLearner` with a `RayScorer` selects exactly what it selects scoring here (local
2-CPU cluster, one torch thread on both sides), in the library and in `dropkit active --ray`."""

from __future__ import annotations

import json

import pytest
import torch

from dropkit.active import ActiveConfig, ActiveLearner, LocalScorer
from dropkit.cli import main
from dropkit.errors import DropkitTypeError
from tests.test_active_learner import _data, _fit

pytest.importorskip("ray", reason="Ray not installed (pip install 'dropkit[ray]')")


@pytest.fixture(autouse=True)
def _one_thread():
    """The actors run one torch thread: bitwise equal scores need the same here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(seed: int, scorer=None):
    x, y, xt, yt = _data()
    # chunk 64: the 200-row pool is 4 chunks, spread over both actors
    cfg = ActiveConfig(acquisition="bald", batch_size=5, budget=15, samples=8, seed=seed,
                       chunk=64)
    return ActiveLearner(_fit, x, lambda i: y[i], initial=[0, 1, 2, 3], x_test=xt, y_test=yt,
                         config=cfg, progress=False, scorer=scorer).run()


def test_ray_scorer_selects_what_local_scoring_selects(ray_cluster) -> None:
    from dropkit.distributed import RayScorer

    local = _run(3)
    assert _run(3, LocalScorer()).labelled == local.labelled  # the default is LocalScorer
    assert _run(4).labelled[4:] != local.labelled[4:]  # the seed matters: equality is earned
    with RayScorer(_fit(*_data()[:2], 0), workers=2) as scorer:
        ids = ray_cluster.get([a.identity.remote() for a in scorer._actors])
        remote = _run(3, scorer)
        # every round's new model reached the same two actors (none restarted)
        assert [pid for pid, _ in ray_cluster.get(
            [a.identity.remote() for a in scorer._actors])] == [pid for pid, _ in ids]
    assert remote.labelled == local.labelled
    assert [r.acquired for r in remote.rounds] == [r.acquired for r in local.rounds]
    assert [r.accuracy for r in remote.rounds] == [r.accuracy for r in local.rounds]


def test_a_scorer_without_score_model_is_named() -> None:
    x, y, xt, yt = _data()
    with pytest.raises(DropkitTypeError, match="`scorer`.*PoolScorer.*but got str"):
        ActiveLearner(_fit, x, lambda i: y[i], initial=[0], x_test=xt, y_test=yt,
                      scorer="ray")  # type: ignore[arg-type]


def test_active_command_with_ray_selects_the_same_labels(ray_cluster, tmp_path,
                                                         monkeypatch) -> None:
    monkeypatch.setenv("TQDM_DISABLE", "1")
    common = ["active", "--quick", "--acquisitions", "bald"]
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--ray", "--out", str(tmp_path / "ray")]) == 0
    local, remote = (json.loads((tmp_path / d / "results.json").read_text())
                     for d in ("local", "ray"))
    runs_l, runs_r = local["experiment"]["runs"], remote["experiment"]["runs"]
    assert [r["labelled"] for r in runs_r] == [r["labelled"] for r in runs_l]
    assert len(runs_l[0]["labelled"]) == 40  # 20 initial + 2 rounds of 10 acquired
    assert local["scoring"] == {"engine": "local"}
    assert remote["scoring"] == {"engine": "ray", "address": "local", "workers": 2,
                                 "threads": 1}
