"""Build a claim's statements (`dropkit.experiments.claim.Statement`) from measured effects.

Every statement's ``criterion`` is written positively and before any number ("supported if
...; partly supported if ...; otherwise not supported"); its ``conditions`` carry each measured
value beside its rule. The claim modules call these helpers after their experiments ran, so
building statements never changes a measured number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dropkit.experiments.claim import (
    GROUP_RULE,
    VERDICTS,
    Condition,
    Statement,
    disagreement,
    group_verdict,
)
from dropkit.lab.base import judge

__all__ = ["ALL_OF_RULE", "GROUP_RULE", "Condition", "Statement", "all_of", "disagreement",
           "effect_conditions", "effect_statement", "fmt", "group_summary", "group_verdict",
           "judge_rule"]


def fmt(value: float) -> str:
    """A number for a condition's ``measured`` text (4 significant digits)."""
    return f"{value:.4g}"


def judge_rule(what: str, min_effect: float, unit: str = "") -> str:
    """The shared effect rule of `dropkit.lab.base.judge` in words, before any number."""
    u = f" {unit}" if unit else ""
    return (f"effect = {what}, per seed; with m its mean over seeds and se its standard error: "
            f"supported if m - 2 se > {min_effect:g}{u}; partly supported if m > 0 and "
            f"m + 2 se > {min_effect:g}{u}; otherwise not supported")


def effect_conditions(effects: Sequence[float], min_effect: float, unit: str = ""
                      ) -> tuple[str, list[Condition], dict[str, Any]]:
    """The verdict of `judge` on ``effects`` with its two conditions and numbers."""
    j = judge(list(effects), min_effect=min_effect, what="")
    u = f" {unit}" if unit else ""
    lo, hi = j.mean - 2 * j.se, j.mean + 2 * j.se
    conditions = [
        Condition(f"m - 2 se > {min_effect:g}{u}",
                  f"{fmt(j.mean)} - 2 x {fmt(j.se)} = {fmt(lo)}{u}", lo > min_effect),
        Condition(f"m > 0 and m + 2 se > {min_effect:g}{u}",
                  f"m = {fmt(j.mean)}, m + 2 se = {fmt(hi)}{u}", j.mean > 0 and hi > min_effect),
    ]
    numbers = {"per_seed": [float(e) for e in effects], "mean": j.mean, "se": j.se,
               "min_effect": min_effect}
    return j.verdict, conditions, numbers


def effect_statement(id: str, group: str, text: str, effects: Sequence[float], *,
                     min_effect: float, what: str, unit: str = "",
                     extra: dict[str, Any] | None = None) -> Statement:
    """A statement judged by the shared effect rule (positive effect = the statement holds)."""
    verdict, conditions, numbers = effect_conditions(effects, min_effect, unit)
    return Statement(id=id, group=group, text=text, verdict=verdict,
                     criterion=judge_rule(what, min_effect, unit), conditions=conditions,
                     numbers={**numbers, **(extra or {})})


def all_of(parts: Sequence[tuple[str, str]]) -> str:
    """Verdict of a statement whose evidence is several judged parts ``(name, verdict)``:
    supported if every part is supported; not supported if every part is not supported;
    partly supported otherwise (the same rule as a claim's group)."""
    verdicts = {v for _, v in parts}
    if not verdicts <= set(VERDICTS) or not parts:
        raise ValueError(f"parts must be judged with {VERDICTS}, got {sorted(verdicts)}")
    if verdicts == {"supported"}:
        return "supported"
    if verdicts == {"not supported"}:
        return "not supported"
    return "partly supported"


#: The rule of `all_of` in words (used in criteria).
ALL_OF_RULE = ("supported if every part is supported; partly supported if the parts' verdicts "
               "differ; otherwise (every part not supported) not supported")


def group_summary(statements: Sequence[Statement]) -> tuple[str, str]:
    """The claim's verdict and the criterion text: the group rule, each statement's verdict,
    and the disagreement sentence when the statements' verdicts differ."""
    verdict = group_verdict(statements)
    lines = "; ".join(f"[{s.id}] {s.verdict}" for s in statements)
    text = f"Group rule: {GROUP_RULE}. Statements: {lines}."
    split = disagreement(statements)
    return verdict, text + (f" {split}" if split else "")
