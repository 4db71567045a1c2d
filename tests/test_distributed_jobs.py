"""`RayJobs`: the lab's jobs as Ray tasks give the numbers of a run in one process (bitwise),
errors come back as outcomes, and stopping early frees the cluster."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from dropkit.cli import main
from dropkit.experiments.jobs import SerialJobs
from dropkit.lab import LabConfig, run_lab
from tests import fake_jobs

pytest.importorskip("ray", reason="Ray not installed (pip install 'dropkit[ray]')")

REGISTRY = {"fake-exp": "tests.lab_fake_descent"}


def _claims(doc: dict) -> list[dict]:
    """The claims' records without their timings (the only field allowed to differ)."""
    return [{k: v for k, v in c.items() if k != "seconds"} for c in doc["claims"]]


def test_jobs_run_in_ray_workers_and_errors_come_back_as_outcomes(ray_cluster) -> None:
    from dropkit.distributed.jobs import RayJobs

    runner = RayJobs(threads=1)
    assert runner.workers == 2  # the session's cluster: 2 CPUs // 1 thread
    outcomes = sorted(runner.run(fake_jobs.where, [3, -1, 5]), key=lambda o: o.index)
    assert [o.index for o in outcomes] == [0, 1, 2]
    (v0, pid0, threads0), (v2, pid2, _) = outcomes[0].value, outcomes[2].value
    assert (v0, v2, threads0) == (9, 25, 1)
    assert os.getpid() not in (pid0, pid2)  # ran in Ray workers, not here
    failed = outcomes[1]
    assert failed.value is None and failed.error == "ValueError: job -1 refuses negative numbers"
    assert "fake_jobs.py" in (failed.traceback or "")  # the worker's own traceback
    assert runner.details() == {"engine": "ray", "address": "local", "threads": 1}


def test_lab_ray_flag_equals_serial_bitwise(ray_cluster, tmp_path: Path, monkeypatch,
                                            capsys) -> None:
    """`dropkit lab --ray` on a claim in `ClaimExperiment` form (a shared job and a job per
    seed): the numbers of `--workers 1`, and results.json says where the jobs ran."""
    from dropkit.lab import runner as R

    monkeypatch.setitem(R.CLAIMS, "fake-exp", "tests.lab_fake_descent")
    common = ["lab", "--claims", "fake-exp", "--seeds", "0,1,2", "--threads", "1",
              "--no-progress"]
    assert main([*common, "--workers", "1", "--out", str(tmp_path / "s")]) == 0
    assert main([*common, "--ray", "--out", str(tmp_path / "r")]) == 0
    doc_s, doc_r = (json.loads((tmp_path / d / "results.json").read_text()) for d in "sr")
    assert _claims(doc_r) == _claims(doc_s)
    # the seeds gave different numbers: equality of three seeds is not one value three times
    assert len(set(doc_s["claims"][0]["numbers"]["losses"])) == 3
    assert doc_r["jobs"] == {"runner": "RayJobs", "workers": 2, "engine": "ray",
                             "address": "local", "threads": 1}
    assert doc_s["jobs"] == {"runner": "SerialJobs", "workers": 1}
    assert doc_r["lab_config"]["workers"] == 2
    assert " --ray " in doc_r["command"] and "--workers" not in doc_r["command"]


def test_real_claim_quick_on_ray_equals_serial(ray_cluster, tmp_path: Path) -> None:
    """The inverted claim at quick size, run here and on Ray at the same time (each run
    takes ~12 s on a loaded 2-core machine): the same numbers."""
    from dropkit.distributed.jobs import RayJobs

    cfg = LabConfig(quick=True, seeds=(0,), threads=1, progress=False)
    before = torch.get_num_threads()
    # both runs set 1 thread and restore what they found: 1 here, so neither run's restore
    # can change the other's thread count mid-run
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(1) as pool:
            remote = pool.submit(run_lab, cfg, claims=["inverted"], out=tmp_path / "r",
                                 command="t", jobs_runner=RayJobs())
            serial = run_lab(cfg, claims=["inverted"], out=tmp_path / "s", command="t",
                             jobs_runner=SerialJobs())
            ray_run = remote.result()
    finally:
        torch.set_num_threads(before)
    assert serial.ok and ray_run.ok
    assert _claims(ray_run.document) == _claims(serial.document)
    assert ray_run.document["jobs"]["runner"] == "RayJobs"


def test_ray_with_workers_is_refused_before_any_work(tmp_path: Path, capsys) -> None:
    out = tmp_path / "r"
    assert main(["lab", "--quick", "--ray", "--workers", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dropkit lab: error: Expected argument `--workers` to be no "
                          "--workers with --ray")
    assert not out.exists()


def test_stopping_early_cancels_the_outstanding_tasks(ray_cluster) -> None:
    """Last in this file: the cancelled tasks' workers are killed, and new ones start slowly."""
    from dropkit.distributed.jobs import RayJobs

    outcomes = RayJobs().run(fake_jobs.sleep, [0.0, 600.0, 600.0])
    first = next(outcomes)
    assert (first.index, first.value) == (0, 0.0)
    t0 = time.perf_counter()
    outcomes.close()  # what a Ctrl-C in the caller's loop does: the generator's finally runs
    # the two 600 s tasks hold (or wait for) the cluster's 2 CPUs; cancelled, they give them
    # back (within a second on an idle machine; a worker still starting on a loaded one can
    # take longer, hence the generous limit)
    while ray_cluster.available_resources().get("CPU", 0) < 2:
        assert time.perf_counter() - t0 < 90, "the cancelled tasks still hold CPUs"
        time.sleep(0.2)
