"""Plain jobs for the job runners' own tests, in a real module so that Ray workers and spawned
processes import them by name (``tests.fake_jobs``)."""

from __future__ import annotations

import os
import time

import torch


def where(x: int) -> tuple[int, int, int]:
    """``x`` squared, with the process and the torch threads it ran with."""
    if x < 0:
        raise ValueError(f"job {x} refuses negative numbers")
    return x * x, os.getpid(), torch.get_num_threads()


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
