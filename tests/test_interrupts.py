"""Ctrl-C at random points of `dropkit bench uci` and `dropkit lab` (subprocesses sent SIGINT):
the command says one line and exits 130, and the result set on disk is always one complete run,
the previous one or the new one."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import dropkit
from dropkit.cli import main
from tests import lab_fake_claims
from tests.uci_layout import write_uci_layout

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(Path(dropkit.__file__).parents[1]), str(REPO), os.environ.get("PYTHONPATH", "")])}
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")


def _interrupt(argv: list[str], marker: str, delay: float) -> tuple[int, str]:
    """Run ``argv``, send SIGINT ``delay`` s after ``marker`` appears on its stderr (or at
    exit); the exit code and all of stderr."""
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, env=ENV, cwd=REPO)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            break
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=120)[1]
    return proc.returncode, "".join(seen) + rest


def _check_exit(rc: int, err: str) -> bool:
    """Whether the run finished. A SIGINT that lands after the command returned (in the
    interpreter's exit) ends the process by the signal (-2): allowed, the run was complete."""
    assert rc in (0, 130, -signal.SIGINT), err
    assert "Traceback" not in err, err
    if rc == 130:
        assert err.strip().splitlines()[-1].endswith(": interrupted"), err
    return rc != 130


def _uci_run(out: Path) -> int:
    """The seed of the complete run found in ``out``, after checking its three files agree."""
    detail = json.loads((out / "uci.json").read_text())
    (result,) = detail["results"]
    seed = result["config"]["seed"]
    (row,) = csv.DictReader((out / "uci.csv").open())
    assert float(row["rmse_mean"]) == np.mean([s["rmse"] for s in result["splits"]])
    assert f'"seed": {seed},' in (out / "uci.md").read_text()
    return seed


def test_ctrl_c_in_bench_uci_leaves_the_old_or_the_new_set(tmp_path: Path) -> None:
    root, out = tmp_path / "data", tmp_path / "out"
    write_uci_layout(root)
    base = ["--root", str(root), "--datasets", "toy", "--out", str(out), "--quick",
            "--epochs", "2", "--mc-samples", "20", "--threads", "1", "--n-splits", "3",
            "--splits-per-batch", "1"]
    assert main(["bench", "uci", *base, "--seed", "0"]) == 0
    current = 0
    rng = random.Random(0)
    # during training (after the first progress bar), then around the writing of the set
    points = [("splits 0..0", rng.uniform(0.0, 0.1)), ("toy: done", rng.uniform(0.0, 0.05)),
              ("toy: done", rng.uniform(0.0, 0.05))]
    for attempt, (marker, delay) in enumerate(points, start=1):
        rc, err = _interrupt([sys.executable, "-m", "dropkit.cli", "bench", "uci", *base,
                              "--seed", str(attempt)], marker, delay)
        finished = _check_exit(rc, err)
        found = _uci_run(out)
        assert found in (current, attempt), (marker, delay, err)
        assert not finished or found == attempt
        current = found
        assert not [p for p in out.iterdir() if p.name.startswith(".dropkit")]


def _lab_run(out: Path) -> str:
    """The run id of the complete lab run found in ``out`` (both files must agree)."""
    doc = json.loads((out / "results.json").read_text())
    runs = {c["key_number"] for c in doc["claims"]}
    assert len(runs) == 1 and len(doc["claims"]) == 2, doc["claims"]
    (run,) = runs
    page = (out / "index.html").read_text()
    assert page.count("<td>run ") == 2 and page.count(f"<td>{run}</td>") == 2
    return run.removeprefix("run ")


def test_ctrl_c_in_lab_leaves_the_old_or_the_new_pair(tmp_path: Path) -> None:
    out = tmp_path / "out"
    from dropkit.lab import runner

    saved = dict(runner.CLAIMS)
    try:  # the previous run, in this process (a subprocess costs a torch import)
        lab_fake_claims.install("0")
        assert main(["lab", "--out", str(out), "--seeds", "0", "--workers", "1",
                     "--no-progress"]) == 0
    finally:
        runner.CLAIMS.clear()
        runner.CLAIMS.update(saved)
    fake = [sys.executable, "-m", "tests.lab_fake_claims"]
    current = "0"
    rng = random.Random(1)
    points = [("claim fake-a ran", rng.uniform(0.0, 0.4)),
              ("claim fake-b ran", rng.uniform(0.18, 0.3)),
              ("claim fake-b ran", rng.uniform(0.18, 0.3))]
    for attempt, (marker, delay) in enumerate(points, start=1):
        rc, err = _interrupt([*fake, str(attempt), str(out), "--sleep", "0.2"], marker, delay)
        finished = _check_exit(rc, err)
        found = _lab_run(out)
        assert found in (current, str(attempt)), (marker, delay, err)
        assert not finished or found == str(attempt)
        current = found
        assert sorted(p.name for p in out.iterdir()) == ["index.html", "results.json"]
