"""The claims lab: one module per common claim about dropout, each returning measured findings.

``run_lab(LabConfig(quick=True), claims=["transformer-placement"], out="lab-report")`` runs the
chosen claims and writes ``lab-report/index.html`` and ``lab-report/results.json``; `CLAIMS`
maps each claim id to its module (each exposes ``run(cfg: LabConfig) -> ClaimResult``).

The runner imports torch, so its names load on first use: ``dropkit lab --help`` imports the
light modules only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dropkit.lab.base import VERDICTS, ClaimResult, Figure, LabConfig, judge
from dropkit.lab.registry import CLAIMS

if TYPE_CHECKING:
    from dropkit.lab.runner import ClaimFailure, LabRun, run_lab

__all__ = ["CLAIMS", "VERDICTS", "ClaimFailure", "ClaimResult", "Figure", "LabConfig", "LabRun",
           "judge", "run_lab"]

_FROM_RUNNER = ("ClaimFailure", "LabRun", "run_lab")


def __getattr__(name: str) -> Any:
    if name in _FROM_RUNNER:
        return getattr(importlib.import_module("dropkit.lab.runner"), name)
    raise AttributeError(f"module 'dropkit.lab' has no attribute {name!r}")
