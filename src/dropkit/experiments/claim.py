"""A claim's statements, each judged on its own, and the rule that turns them into one verdict.

A common explanation of dropout makes several statements at once ("dropout and BatchNorm":
the variance shift is amplified, the pair often hurts, put dropout after the activation, many
CNNs use BatchNorm alone). The lab judges each statement from its own rule and numbers; the
claim's verdict is derived from its statements by `group_verdict`, so a claim whose statements
disagree cannot read as one clean verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

VERDICTS = ("supported", "partly supported", "not supported")


@dataclass(frozen=True)
class Condition:
    """One condition of a statement's rule, with the value measured for it.

    ``rule`` is written positively ("mean gain - 2 se > 0.5 pp"), ``measured`` is the value
    that was compared ("1.9 pp - 2 x 0.3 pp = 1.3 pp"), ``holds`` the outcome.
    """

    rule: str
    measured: str
    holds: bool


@dataclass
class Statement:
    """One statement of a claim, judged from its own rule (stated before its numbers)."""

    id: str  # e.g. "bn.recipe"
    group: str  # the claim it belongs to, e.g. "batchnorm"
    text: str  # the statement as people make it
    verdict: str  # one of VERDICTS
    criterion: str  # "supported if ...; partly supported if ...; otherwise not supported"
    conditions: list[Condition] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    # "measured" (an experiment ran) or "descriptive" (read from configurations or the docs)
    kind: str = "measured"


def group_verdict(statements: Sequence[Statement]) -> str:
    """A claim's verdict from its statements.

    Rule: *supported* if every statement is supported; *not supported* if every statement is
    not supported; otherwise *partly supported* (and the claim's summary names the statements
    that disagree, see `disagreement`).
    """
    verdicts = {s.verdict for s in statements}
    if not statements or not verdicts <= set(VERDICTS):
        from dropkit.errors import DropkitValueError, expected

        raise DropkitValueError(expected("statements", f"a non-empty list with verdicts in "
                                                       f"{VERDICTS}", sorted(verdicts)))
    if verdicts == {"supported"}:
        return "supported"
    if verdicts == {"not supported"}:
        return "not supported"
    return "partly supported"


#: The group rule in words, for the report and ``results.json``.
GROUP_RULE = ("a claim is supported if every statement is supported, not supported if every "
              "statement is not supported, and partly supported otherwise")


def disagreement(statements: Sequence[Statement]) -> str:
    """One sentence naming statements whose verdicts differ ("" when they all agree)."""
    by_verdict: dict[str, list[str]] = {}
    for s in statements:
        by_verdict.setdefault(s.verdict, []).append(s.id)
    if len(by_verdict) < 2:
        return ""
    parts = [f"{v}: {', '.join(ids)}" for v, ids in by_verdict.items()]
    return "The statements disagree (" + "; ".join(parts) + ")."


_T = TypeVar("_T")


class Settings(Protocol):
    """A claim's settings: a frozen dataclass whose every field can change a result (sizes,
    rates, thresholds of the rules); ``quick()`` gives the smoke-test size of the same
    experiment. `dataclasses.asdict` of it is written into ``results.json`` as the claim's
    ``config``."""

    def quick(self: _T) -> _T: ...


S = TypeVar("S", bound=Settings)


@dataclass
class Judged:
    """What `ClaimExperiment.judge` returns: the statements (each with its own rule and
    numbers; the claim's verdict follows from them by `group_verdict`) and the claim's text."""

    statements: list[Statement]
    criterion: str  # the claim's rule in words (the group rule, and the parts it combines)
    key_number: str  # one line for the report's summary table
    numbers: dict[str, Any]  # every measured value (JSON types; per-seed records included)
    setup: str
    caveats: list[str] = field(default_factory=list)
    # the seeds the numbers come from, when a claim uses fewer than the run's (None: all)
    seeds: list[int] | None = None


@dataclass(frozen=True)
class ClaimExperiment(Generic[S]):
    """One claim of the lab as four pure steps, so that a runner can place its jobs anywhere
    (this process, a process pool, Ray tasks) and get the same numbers.

    - ``measure(settings, seed)``: one seed's measurements. It seeds every random number it
      draws from ``seed`` (its own generators or ``torch.manual_seed`` at its start), so its
      result does not depend on what ran before it in the same process.
    - ``shared(settings, seeds)``: measurements made once, not per seed (a configuration
      survey, a reference posterior); None when there are none.
    - ``judge(settings, per_seed, shared)``: statements and numbers from the measurements
      (``per_seed`` in the order of ``seeds``), no training.
    - ``figures(settings, per_seed, shared)``: the report's figures, no training.
    """

    id: str
    title: str
    claim: str  # the claim as people make it
    settings: S  # the full-size settings; ``settings.quick()`` for a smoke test
    measure: Callable[[S, int], dict[str, Any]]
    judge: Callable[[S, list[dict[str, Any]], dict[str, Any]], Judged]
    figures: Callable[[S, list[dict[str, Any]], dict[str, Any]], list[Any]]
    shared: Callable[[S, tuple[int, ...]], dict[str, Any]] | None = None

    def sized(self, quick: bool) -> S:
        """The settings of a full run, or of a smoke test when ``quick``."""
        return self.settings.quick() if quick else self.settings
