"""`lint`: read a model's dropout placement and report what looks wrong, like ruff for code."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from dropkit.diagnose._borrow import check_model
from dropkit.diagnose.dataflow import build_dataflow
from dropkit.diagnose.findings import SEVERITIES, Finding, LintResult
from dropkit.diagnose.graph import SiteFlow
from dropkit.diagnose.handnorm import mark_hand_norms
from dropkit.diagnose.rules import RULES, Context, rate_sites
from dropkit.errors import DropkitValueError, expected
from dropkit.inspection.discover import find_dropout


def lint(model: nn.Module, example_input: object = None, *, method: str = "auto",
         select: list[str] | None = None) -> LintResult:
    """Lint the dropout of ``model``.

    Args:
        model: any ``nn.Module``; borrowed: flags, parameters, buffers and the global random
            state are as they were afterwards.
        example_input: one forward's input (a tensor, or a tuple of positional arguments). The
            dataflow rules need it; without it only the rules on rates and control run
            (``method == "none"``).
        method: how to build the dataflow: ``"auto"`` (torch.fx, else forward hooks), ``"fx"``,
            ``"hooks"``.
        select: rule ids to run (default: all of `RULES`).

    Returns:
        A `LintResult`: the findings (errors, then warnings, then infos), the method used and
        the dataflow of each dropout site.

    Rates are the ones the model is configured with (`dropkit.diagnose.rates`), so attention
    that ran with p=0 only because mc_mode left its flag off is not called p=0; p=0
    placeholders are one ``info`` finding. Normalisations written by hand count as norms
    (`dropkit.diagnose.handnorm`).

    Example:
        >>> import torch
        >>> from dataclasses import replace

from torch import nn
        >>> from dropkit.diagnose import lint
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 8),
        ...                     nn.BatchNorm1d(8))
        >>> [f.rule for f in lint(net, torch.randn(2, 4))]
        ['dropout-before-batchnorm']
    """
    model = check_model(model)
    names = list(RULES) if select is None else list(select)
    unknown = [r for r in names if r not in RULES]
    if unknown:
        raise DropkitValueError(expected("select", "rule ids among " + ", ".join(RULES),
                                         unknown))
    flow = None if example_input is None else mark_hand_norms(
        build_dataflow(model, example_input, method=method))
    ctx = Context(model, find_dropout(model), flow, frozenset(names))
    found: dict[tuple[str, str, str], Finding] = {}
    for name in names:
        for f in RULES[name](ctx):
            found.setdefault((f.rule, f.path, f.message), f)
    ordered = sorted(found.values(), key=lambda f: (SEVERITIES.index(f.severity), f.path, f.rule))
    return LintResult(ordered, flow.method if flow else "none", flow, _flows(ctx))


def _flows(ctx: Context) -> list[SiteFlow]:
    """The dataflow of each site, with the configured rate where the call ran with p=0 only
    because mc_mode could not switch its flag (never "p=0" for a site configured > 0)."""
    if ctx.flow is None:
        return []
    off = rate_sites(ctx).off
    return [replace(s, p=off[s.path][1].p, kind=f"{s.kind}, off under mc_mode")
            if s.path in off and s.p == 0.0 else s for s in ctx.flow.flows()]
