"""`RayJobs`: an experiment's independent jobs as Ray tasks (the lab's claims x seeds, the UCI
benchmark's groups of splits), behind the same `dropkit.experiments.jobs.JobRunner` interface
as `SerialJobs` and `ProcessJobs`.

Each job runs in a Ray worker with ``threads`` torch threads (and as many Ray CPUs), through
the same `dropkit.experiments.jobs.timed` as a local run, so a job that raises comes back as an
`Outcome` with its error and the worker's traceback. A job seeds its own random numbers, so the
results equal a local run's at the same thread count (tested bitwise:
tests/test_distributed_jobs.py).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from dropkit._validate import check_positive_int
from dropkit.distributed._ray import connect
from dropkit.experiments.jobs import Outcome, timed

__all__ = ["RayJobs"]

J = TypeVar("J")
R = TypeVar("R")


def _run_job(fn: Callable[[J], R], job: J,
             threads: int) -> tuple[R | None, str | None, str | None, float]:
    """The task's body (top level, so Ray pickles it by reference): the thread count first,
    since a Ray worker may have run another job with another setting before."""
    import torch

    torch.set_num_threads(threads)
    return timed(fn, job)


class RayJobs:
    """Jobs as Ray tasks on the cluster at ``address`` (None: the running Ray session, else a
    new local cluster on this machine's CPUs; ``"auto"`` or ``"ray://host:10001"`` to join
    one), each task with ``threads`` torch threads and as many Ray CPUs.

    ``workers`` (jobs at once) is the cluster's CPUs // ``threads``; reading it connects.
    Outcomes come back as the tasks finish. If the caller stops early (Ctrl-C, an error, or
    closing the iterator), tasks not yet finished are cancelled before the exception goes on.
    """

    in_process = False

    def __init__(self, address: str | None = None, threads: int = 1) -> None:
        self.address = address
        self.threads = check_positive_int("threads", threads)
        self._workers: int | None = None

    @property
    def workers(self) -> int:
        if self._workers is None:
            ray = connect(self.address)
            cpus = int(ray.cluster_resources().get("CPU", 1))
            self._workers = max(1, cpus // self.threads)
        return self._workers

    @workers.setter
    def workers(self, value: int) -> None:  # a settable attribute, as JobRunner declares it
        self._workers = check_positive_int("workers", value)

    def details(self) -> dict[str, Any]:
        """What a results file records about where the jobs ran."""
        return {"engine": "ray", "address": self.address or "local",
                "threads": self.threads}

    def run(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[Outcome[R]]:
        if not jobs:
            return
        ray = connect(self.address)
        task = ray.remote(num_cpus=self.threads)(_run_job)
        index = {task.remote(fn, job, self.threads): i for i, job in enumerate(jobs)}
        pending = list(index)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                ref = done[0]
                try:
                    value = ray.get(ref)
                except Exception as err:  # the task itself failed (worker died, cancelled)
                    yield Outcome(index[ref], None, f"{type(err).__name__}: {err}",
                                  "".join(traceback.format_exception(err)), 0.0)
                else:
                    yield Outcome(index[ref], *value)
        finally:
            for ref in pending:  # stopped early: nothing keeps running for nobody
                ray.cancel(ref, force=True)

    def __repr__(self) -> str:
        return f"RayJobs(address={self.address!r}, threads={self.threads})"
