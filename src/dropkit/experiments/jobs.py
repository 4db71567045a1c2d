"""Where an experiment's independent jobs run: here, in a pool of local processes, or elsewhere
(Ray tasks, `dropkit.distributed.jobs`), all behind one small interface.

A job is a picklable description (a module name, a size, a seed) and a top-level function, so
that a worker process or a Ray worker can rebuild everything from it; a job seeds its own random
numbers (`dropkit.experiments.claim.ClaimExperiment.measure`), so where and in which order it
runs does not change its result (tested bitwise: `tests/test_experiments_jobs.py`).
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from dropkit._validate import check_positive_int

__all__ = ["JobRunner", "Outcome", "ProcessJobs", "SerialJobs", "available_cpus", "job_runner",
           "jobs_record"]

J = TypeVar("J")
R = TypeVar("R")


@dataclass
class Outcome(Generic[R]):
    """One finished job: its index in the submitted list, and its value or its error."""

    index: int
    value: R | None
    error: str | None  # "ExceptionType: message"; None when the job returned
    traceback: str | None
    seconds: float  # the job's own wall time, measured where it ran


class JobRunner(Protocol):
    """Runs ``fn(job)`` for every job and yields each `Outcome` as it finishes (any order).

    A job that raises is an `Outcome` with ``error`` set, never an exception here, so one
    failing job does not stop the others. ``workers`` says how many jobs run at once;
    ``in_process`` whether they run in this process (only then may they draw progress bars:
    bars drawn by several workers would interleave).
    """

    workers: int
    in_process: bool

    def run(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[Outcome[R]]: ...


def timed(fn: Callable[[J], R], job: J) -> tuple[R | None, str | None, str | None, float]:
    """``fn(job)`` with its wall time; an exception becomes (None, error, traceback, seconds).

    Runs where the job runs (so the traceback is the worker's, not a pickled copy)."""
    start = time.perf_counter()
    try:
        value = fn(job)
    except Exception as err:
        return None, f"{type(err).__name__}: {err}", traceback.format_exc(), \
            time.perf_counter() - start
    return value, None, None, time.perf_counter() - start


class SerialJobs:
    """Every job in this process, one after another, in the submitted order."""

    workers = 1
    in_process = True

    def run(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[Outcome[R]]:
        for i, job in enumerate(jobs):
            yield Outcome(i, *timed(fn, job))


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


class ProcessJobs:
    """Jobs in a pool of ``workers`` fresh processes (spawned, not forked: a fork of a process
    that has started torch's thread pools can deadlock), each with ``threads`` torch threads.

    On an interrupt or an error in the caller, jobs not yet started are cancelled and the
    pool is shut down before the exception propagates.
    """

    in_process = False

    def __init__(self, workers: int, threads: int = 1) -> None:
        check_positive_int("workers", workers)
        check_positive_int("threads", threads)
        self.workers, self.threads = workers, threads

    def run(self, fn: Callable[[J], R], jobs: Sequence[J]) -> Iterator[Outcome[R]]:
        if not jobs:
            return
        pool = ProcessPoolExecutor(max_workers=min(self.workers, len(jobs)),
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(self.threads,))
        try:
            index: dict[Future[Any], int] = {pool.submit(timed, fn, job): i
                                              for i, job in enumerate(jobs)}
            pending = set(index)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=index.__getitem__):
                    err = future.exception()
                    if err is not None:  # the worker itself died (killed, out of memory)
                        yield Outcome(index[future], None, f"{type(err).__name__}: {err}",
                                      "".join(traceback.format_exception(err)), 0.0)
                    else:
                        yield Outcome(index[future], *future.result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def available_cpus() -> int:
    """The CPUs this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def job_runner(workers: int, threads: int = 1) -> JobRunner:
    """`SerialJobs` for one worker (no extra process), else `ProcessJobs`."""
    check_positive_int("workers", workers)
    return SerialJobs() if workers == 1 else ProcessJobs(workers, threads)


def jobs_record(runner: JobRunner) -> dict[str, Any]:
    """Where the jobs ran, as a results file records it: the runner's class, its workers, and
    what the runner adds through an optional ``details()`` (`RayJobs`: the cluster address)."""
    details = getattr(runner, "details", None)
    return {"runner": type(runner).__name__, "workers": runner.workers,
            **(details() if callable(details) else {})}
