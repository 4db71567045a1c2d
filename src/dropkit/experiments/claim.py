"""A claim's statements, each judged on its own, and the rule that turns them into one verdict.

A common explanation of dropout makes several statements at once ("dropout and BatchNorm":
the variance shift is amplified, the pair often hurts, put dropout after the activation, many
CNNs use BatchNorm alone). The lab judges each statement from its own rule and numbers; the
claim's verdict is derived from its statements by `group_verdict`, so a claim whose statements
disagree cannot read as one clean verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
