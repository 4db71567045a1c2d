"""Checks every claim of the lab must pass (shared by the tests of the claim modules)."""

from __future__ import annotations

import io
import json
import math
from typing import Any

from dropkit.lab.base import VERDICTS, ClaimResult, LabConfig, judge

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def finite_leaves(obj: Any, path: str = "numbers") -> list[str]:
    """Paths of every non-finite float or non-JSON leaf under ``obj`` (empty when all good)."""
    bad = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                bad.append(f"{path}: key {k!r} is not a str")
            bad += finite_leaves(v, f"{path}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            bad += finite_leaves(v, f"{path}[{i}]")
    elif isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        pass
    elif isinstance(obj, float):
        if not math.isfinite(obj):
            bad.append(f"{path} = {obj}")
    else:
        bad.append(f"{path}: {type(obj).__name__} is not JSON")
    return bad


def check_claim(result: ClaimResult, cfg: LabConfig, claim_id: str) -> None:
    """Structure, verdict, finite JSON numbers, and decodable, legible-sized PNG figures."""
    import matplotlib.image as mpimg

    assert isinstance(result, ClaimResult)
    assert result.id == claim_id
    for name in ("title", "claim", "setup", "criterion", "key_number"):
        value = getattr(result, name)
        assert isinstance(value, str) and value.strip(), name
    assert result.verdict in VERDICTS
    assert finite_leaves(result.numbers) == []
    json.dumps(result.numbers, allow_nan=False)
    json.dumps(result.config, allow_nan=False)
    assert result.seeds == list(cfg.seeds)
    assert result.seconds > 0
    assert result.caveats and all(isinstance(c, str) and c for c in result.caveats)
    assert result.figures
    assert len({f.name for f in result.figures}) == len(result.figures)
    for fig in result.figures:
        assert fig.png.startswith(PNG_SIGNATURE), fig.name
        image = mpimg.imread(io.BytesIO(fig.png), format="png")  # decodes, or raises
        assert image.shape[0] >= 200 and image.shape[1] >= 300, (fig.name, image.shape)
        assert fig.caption.strip()


def rejudge(effects: list[float], min_effect: float) -> str:
    """The verdict `judge` gives these per-seed effects (to recompute a claim's parts)."""
    return judge(effects, min_effect=min_effect, what="recomputed").verdict


def verdict_by_hand(verdicts: list[str]) -> str:
    """The group rule (and `all_of`), written out independently of the library."""
    if all(v == "supported" for v in verdicts):
        return "supported"
    if all(v == "not supported" for v in verdicts):
        return "not supported"
    return "partly supported"


def check_statements(result: ClaimResult, ids: list[str]) -> None:
    """Every statement re-judged from its own numbers; the claim's verdict from the statements.

    A statement judged by the shared effect rule carries ``per_seed`` and ``min_effect``; one
    made of parts carries, per part, the part's ``verdict`` with its ``per_seed`` and
    ``min_effect`` (descriptive parts carry the survey's numbers instead). Each is recomputed
    here with `judge` and the all-parts rule, and the conditions' outcomes must agree with the
    mean and se they state.
    """
    assert [s.id for s in result.statements] == ids
    for s in result.statements:
        assert s.group == result.id and s.verdict in VERDICTS, s.id
        assert "supported if" in s.criterion and s.text and s.conditions, s.id
        n = s.numbers
        if "per_seed" in n and "min_effect" in n:
            assert s.verdict == rejudge(n["per_seed"], n["min_effect"]), s.id
            m, se, t = n["mean"], n["se"], n["min_effect"]
            assert [c.holds for c in s.conditions] == [m - 2 * se > t,
                                                      m > 0 and m + 2 * se > t], s.id
        parts = {k: v for k, v in n.items() if isinstance(v, dict) and "verdict" in v}
        for name, part in parts.items():
            if "per_seed" in part:
                assert part["verdict"] == rejudge(part["per_seed"], part["min_effect"]), name
        if parts and not ("per_seed" in n and "min_effect" in n) and s.id not in (
                "bayes.cheap", "ens.scaling", "inv.same"):
            assert s.verdict == verdict_by_hand([p["verdict"] for p in parts.values()]), s.id
    assert result.verdict == verdict_by_hand([s.verdict for s in result.statements])
    split = {s.verdict for s in result.statements}
    assert (len(split) > 1) == ("The statements disagree" in result.key_number)
