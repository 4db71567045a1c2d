"""Where a claim's jobs run does not change its numbers: this process, spawned worker processes,
any order; a failing job fails its claim only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dropkit.errors import DropkitValueError
from dropkit.experiments.jobs import Outcome, SerialJobs, job_runner, timed
from dropkit.lab import LabConfig, run_lab
from dropkit.lab.base import run_experiment
from tests import lab_fake_experiment as fake

REGISTRY = {"fake-exp": "tests.lab_fake_experiment"}


def _square(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative {x}")
    return x * x


def test_serial_jobs_keep_order_and_report_errors() -> None:
    out = list(SerialJobs().run(_square, [3, -1, 2]))
    assert [o.index for o in out] == [0, 1, 2]
    assert [o.value for o in out] == [9, None, 4]
    assert out[1].error == "ValueError: negative -1" and "_square" in (out[1].traceback or "")


def test_timed_turns_an_exception_into_values() -> None:
    value, error, tb, seconds = timed(_square, -2)
    assert value is None and error == "ValueError: negative -2" and seconds >= 0
    assert isinstance(Outcome(0, value, error, tb, seconds), Outcome)


def test_job_runner_checks_workers() -> None:
    assert isinstance(job_runner(1), SerialJobs)
    with pytest.raises(DropkitValueError, match="workers"):
        job_runner(0)


def _numbers(out: Path) -> list[dict]:
    doc = json.loads((out / "results.json").read_text())
    return [{k: c[k] for k in ("numbers", "verdict", "key_number", "statements")}
            for c in doc["claims"]]


def test_lab_numbers_do_not_depend_on_workers(tmp_path: Path) -> None:
    seeds = (4, 0, 7)
    serial = run_lab(LabConfig(seeds=seeds, progress=False), out=tmp_path / "a",
                     registry=REGISTRY)
    pooled = run_lab(LabConfig(seeds=seeds, progress=False, workers=2), out=tmp_path / "b",
                     registry=REGISTRY)
    assert serial.ok and pooled.ok
    assert _numbers(tmp_path / "a") == _numbers(tmp_path / "b")
    # independent: each seed's effect recomputed here, in this process, in another order
    for seed, record in zip(seeds, serial.results[0].numbers["per_seed"], strict=True):
        assert record == fake.measure(fake.FakeSettings(), seed) | {"threads": 1}
    assert serial.results[0].numbers["shared"] == {"seeds": [4, 0, 7], "n": 1000}
    # the module's own serial run gives the same numbers as the runner
    direct = run_experiment(fake.EXPERIMENT, LabConfig(seeds=seeds, progress=False))
    assert [r["effect"] for r in direct.numbers["per_seed"]] == \
        [r["effect"] for r in serial.results[0].numbers["per_seed"]]
    assert direct.config == {"n": 1000, "min_effect": 0.0, "quick": False}


def test_a_failing_seed_fails_its_claim(tmp_path: Path, capsys) -> None:
    # in worker processes: the error and its traceback come back from the worker
    run = run_lab(LabConfig(quick=True, seeds=(0, fake.FAIL_SEED), progress=False, workers=2),
                  out=tmp_path, registry=REGISTRY)
    assert [f.id for f in run.failed] == ["fake-exp"] and not run.results
    assert run.failed[0].error == f"RuntimeError: seed {fake.FAIL_SEED} <broke>"
    assert "<broke>" in capsys.readouterr().err
    assert torch.get_num_threads() >= 1


def test_workers_flag_auto_is_one_per_cpu_and_one_for_a_smoke_test() -> None:
    from dropkit.commands.lab import _workers
    from dropkit.experiments.jobs import available_cpus

    assert _workers(None, 1) == _workers("auto", 1) == available_cpus()
    assert _workers("auto", available_cpus() + 1) == 1  # never 0
    assert _workers(None, 1, quick=True) == 1 and _workers("3", 1, quick=True) == 3
    with pytest.raises(DropkitValueError, match="--workers"):
        _workers("0", 1)
