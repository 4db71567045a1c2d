"""The UCI benchmark's independent jobs (data set x group of splits) on any
`dropkit.experiments.jobs.JobRunner`: here, in local processes, or as Ray tasks
(`dropkit.distributed.jobs.RayJobs`).

A group's seeds come from its number alone (`dropkit.bench.uci_protocol.run_uci`), so every
split's result is the same, bit for bit, wherever and in whatever order the groups ran, at the
same torch thread count (tested: tests/test_bench_uci_jobs.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from dropkit.bench.uci_config import UCIConfig
from dropkit.bench.uci_protocol import UCIResult, UCIRun, plan_uci, run_group
from dropkit.datasets.uci import UCIDataset
from dropkit.errors import DropkitValueError
from dropkit.experiments.jobs import JobRunner, SerialJobs

__all__ = ["UCIJobError", "run_uci_jobs"]


class UCIJobError(RuntimeError):
    """A group's job failed for a reason other than a dropkit error (a worker died, a bug);
    the message holds the worker's traceback."""


def run_uci_jobs(
    datasets: Sequence[UCIDataset],
    config: UCIConfig,
    *,
    dtype: torch.dtype = torch.float32,
    resume: Mapping[str, UCIResult] | None = None,
    on_group_done: Callable[[UCIDataset, UCIResult], None] | None = None,
    on_dataset_done: Callable[[UCIResult], None] | None = None,
    jobs_runner: JobRunner | None = None,
    progress: bool = False,
) -> list[UCIResult]:
    """`run_uci` for every data set, its groups of splits as jobs on ``jobs_runner`` (default:
    `SerialJobs`, here in order). ``resume``: partial results by data set name (their groups are
    kept). ``on_group_done(dataset, result)`` sees a data set's result after each of its groups
    (checkpoints); ``on_dataset_done`` once its last group is in. A job that fails stops the
    run: a dropkit error (training diverged) as the `DropkitValueError` a local run raises,
    anything else as a `UCIJobError`; the outstanding jobs are cancelled.
    """
    runner = jobs_runner if jobs_runner is not None else SerialJobs()
    here = runner.in_process  # progress bars only in this process
    resume = resume or {}
    runs: list[UCIRun] = [plan_uci(d, config, dtype=dtype, progress=progress and here,
                                   resume=resume.get(d.name)) for d in datasets]
    flat = [(k, job) for k, run in enumerate(runs) for job in run.jobs]
    left = [len(run.jobs) for run in runs]
    for k, run in enumerate(runs):
        if not left[k] and on_dataset_done is not None:  # everything kept from resume
            on_dataset_done(run.result)
    outcomes = runner.run(run_group, [job for _, job in flat])
    try:
        for outcome in outcomes:
            k, job = flat[outcome.index]
            if outcome.error is not None:
                name, _, message = outcome.error.partition(": ")
                if name.startswith("Dropkit"):  # the user's data or settings: one line
                    raise DropkitValueError(message)
                raise UCIJobError(f"{job.dataset.name} group {job.g} failed:\n"
                                  f"{outcome.traceback}")
            assert outcome.value is not None
            result = runs[k].add(job, outcome.value)
            left[k] -= 1
            if on_group_done is not None:
                on_group_done(datasets[k], result)
            if not left[k] and on_dataset_done is not None:
                on_dataset_done(result)
    finally:  # a failed job, an error in a callback or Ctrl-C: the runner cancels the rest
        close = getattr(outcomes, "close", None)
        if callable(close):
            close()
    return [run.result for run in runs]
