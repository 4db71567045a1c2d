"""Diagnostics for dropout: placement lint, BatchNorm variance shift and its remedy.

* `lint(model, example_input)`: the findings of every rule in `RULES` (see `rules`), read
  from the model's dataflow (`build_dataflow`, torch.fx or forward hooks).
* `variance_shift(model, data)`: per BatchNorm layer, running variance / inference variance.
* `recalibrate_bn(model, data)`: BatchNorm statistics re-estimated with dropout off.
"""

from dropkit.diagnose.dataflow import build_dataflow
from dropkit.diagnose.findings import Finding, LintResult
from dropkit.diagnose.graph import Dataflow, Node, SiteFlow
from dropkit.diagnose.linter import lint
from dropkit.diagnose.recalibrate import recalibrate_bn
from dropkit.diagnose.rules import RULES
from dropkit.diagnose.variance import LayerShift, VarianceShift, variance_shift

__all__ = [
    "RULES",
    "Dataflow",
    "Finding",
    "LayerShift",
    "LintResult",
    "Node",
    "SiteFlow",
    "VarianceShift",
    "build_dataflow",
    "lint",
    "recalibrate_bn",
    "variance_shift",
]
