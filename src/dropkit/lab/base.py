"""What every claim experiment returns, and the one rule that turns numbers into a verdict."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dropkit.experiments.claim import VERDICTS, Statement
from dropkit.report.figure import Figure, figure_png  # one home: report/ (layout-checked)

__all__ = ["VERDICTS", "ClaimResult", "Figure", "Judgement", "LabConfig", "Statement",
           "figure_png", "judge", "mean_se"]


@dataclass(frozen=True)
class LabConfig:
    """Settings shared by all experiments; each experiment scales its sizes by ``quick``."""

    quick: bool = False
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    # One torch thread: the lab's models are small, so a second intra-op thread gains little,
    # and on busy or shared cores it made training steps several times slower (measured: 10
    # steps of the transformer claim took 3.0 s with 1 thread, 28 s with 2, on 2 loaded cores).
    threads: int = 1
    progress: bool = True  # each experiment shows a tqdm bar (stderr) with desc=its claim id


@dataclass
class ClaimResult:
    """The measured findings of one claim.

    ``numbers`` holds every measured value (JSON-serialisable), ``key_number`` a one-line
    summary for the report's table, ``verdict`` one of `VERDICTS` computed by `judge` (or a
    stated rule) from the numbers, and ``criterion`` that rule in words.
    """

    id: str
    title: str
    claim: str
    setup: str
    verdict: str
    criterion: str
    key_number: str
    numbers: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    seconds: float = 0.0
    # each statement of the claim judged on its own (issue 14); `verdict` then follows from
    # them by `experiments.claim.group_verdict`
    statements: list[Statement] = field(default_factory=list)


@dataclass(frozen=True)
class Judgement:
    verdict: str
    criterion: str
    mean: float
    se: float


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (sample std / sqrt(n); 0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def judge(effects: Sequence[float], *, min_effect: float, what: str) -> Judgement:
    """Verdict from per-seed effect sizes, where a positive effect favours the claim.

    Rule: with m the mean effect over seeds and se its standard error,
    *supported* if m - 2 se > ``min_effect`` (a meaningful effect, clear of seed noise);
    *partly supported* if m > 0 and m + 2 se > ``min_effect`` but not the above (right sign,
    but small or noisy); *not supported* otherwise (no effect, or the opposite one).
    """
    m, se = mean_se(list(effects))
    if m - 2 * se > min_effect:
        verdict = "supported"
    elif m > 0 and m + 2 * se > min_effect:
        verdict = "partly supported"
    else:
        verdict = "not supported"
    criterion = (f"effect = {what}; over {len(effects)} seeds mean {m:.4g} ± {se:.2g} (se). "
                 f"supported if mean - 2se > {min_effect:g}; partly supported if mean > 0 and "
                 f"mean + 2se > {min_effect:g}; else not supported")
    return Judgement(verdict, criterion, m, se)


def check_seeds(cfg: LabConfig) -> list[int]:
    """``cfg.seeds`` as a list, checked: at least one non-negative int."""
    from dropkit.errors import DropkitValueError, expected

    seeds = list(cfg.seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                            for s in seeds):
        raise DropkitValueError(expected("cfg.seeds", "a non-empty tuple of non-negative ints",
                                         cfg.seeds))
    return seeds


def errorbar(ax: Any, xs: Sequence[float], per_seed: list[list[float]], **kw: Any) -> None:
    """Plot the mean over seeds at each x with error bars of ±2 standard errors."""
    stats = [mean_se([row[i] for row in per_seed]) for i in range(len(xs))]
    ax.errorbar(xs, [m for m, _ in stats], yerr=[2 * e for _, e in stats], capsize=3, **kw)
