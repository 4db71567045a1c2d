"""The claims lab: one module per common claim about dropout, each returning measured findings.

``run_lab(LabConfig(quick=True), claims=["transformer-placement"], out="lab-report")`` runs the
chosen claims and writes ``lab-report/index.html`` and ``lab-report/results.json``; `CLAIMS`
maps each claim id to its module (each exposes ``run(cfg: LabConfig) -> ClaimResult``).
"""

from dropkit.lab.base import VERDICTS, ClaimResult, Figure, LabConfig, judge
from dropkit.lab.runner import CLAIMS, ClaimFailure, LabRun, run_lab

__all__ = ["CLAIMS", "VERDICTS", "ClaimFailure", "ClaimResult", "Figure", "LabConfig", "LabRun",
           "judge", "run_lab"]
