"""What every claim experiment returns, and the one rule that turns numbers into a verdict."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dropkit.experiments.claim import VERDICTS, ClaimExperiment, Judged, Statement, group_verdict
from dropkit.report.figure import Figure, figure_png  # one home: report/ (layout-checked)

__all__ = ["VERDICTS", "ClaimExperiment", "ClaimResult", "Figure", "Judged", "Judgement",
           "LabConfig", "Statement", "assemble", "figure_png", "judge", "mean_se",
           "run_experiment"]


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
    # jobs (a claim's seeds, its shared part) running at once, each in its own process with
    # ``threads`` torch threads; 1 runs everything in this process. Results do not depend on it.
    workers: int = 1


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


def assemble(exp: ClaimExperiment[Any], cfg: LabConfig, per_seed: list[dict[str, Any]],
             shared: dict[str, Any], seconds: float) -> ClaimResult:
    """The `ClaimResult` of ``exp`` from its measurements: judged, drawn, and its settings
    written as its ``config`` (every field of the settings can change a result)."""
    settings = exp.sized(cfg.quick)
    judged = exp.judge(settings, per_seed, shared)
    figures = exp.figures(settings, per_seed, shared)
    return ClaimResult(
        id=exp.id, title=exp.title, claim=exp.claim, setup=judged.setup,
        verdict=group_verdict(judged.statements), criterion=judged.criterion,
        key_number=judged.key_number, numbers=judged.numbers, figures=figures,
        caveats=judged.caveats, config={**dataclasses.asdict(settings), "quick": cfg.quick},
        seeds=list(cfg.seeds) if judged.seeds is None else list(judged.seeds),
        seconds=seconds, statements=judged.statements)


def run_experiment(exp: ClaimExperiment[Any], cfg: LabConfig) -> ClaimResult:
    """Run ``exp`` here, one seed after another (what `dropkit.lab.runner.run_lab` does with
    one worker); a progress bar counts the seeds."""
    from dropkit._progress import progress_bar

    start = time.perf_counter()
    seeds = check_seeds(cfg)
    settings = exp.sized(cfg.quick)
    shared = exp.shared(settings, tuple(seeds)) if exp.shared is not None else {}
    per_seed = []
    with progress_bar(seeds, desc=exp.id, enabled=cfg.progress, leave=False) as bar:
        for seed in bar:
            per_seed.append(exp.measure(settings, seed))
    return assemble(exp, cfg, per_seed, shared, time.perf_counter() - start)
