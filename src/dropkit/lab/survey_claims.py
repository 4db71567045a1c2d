"""The configuration survey (`dropkit.lab.config_survey`) as statements of the lab's claims.

[bn.practice] belongs to the batchnorm claim and [scale.nodrop] to the scale claim; both come
from one survey, measured once per process and size (reading defaults is deterministic).
"""

from __future__ import annotations

import functools
from typing import Any

from dropkit.experiments.claim import VERDICTS, Condition, Statement
from dropkit.lab import config_survey as C
from dropkit.lab.base import Figure, figure_png

TEXTS = {
    "bn.practice": "Many modern CNNs use BatchNorm without dropout.",
    "scale.nodrop": "Modern large models use no or very low dropout, because overfitting is "
                    "not their bottleneck.",
}
GROUPS = {"bn.practice": "batchnorm", "scale.nodrop": "scale"}


def _statement(row: dict[str, Any]) -> Statement | None:
    """The survey's judgement as a Statement, or None when it could not judge (too few
    models were readable: the statement is then left out, not given a fourth verdict)."""
    if row["verdict"] not in VERDICTS:
        return None
    n = row["numbers"]
    if row["id"] == "bn.practice":
        total, agree = n["cnns"], n["batchnorm_no_dropout"]
        what = "modern CNN builders with BatchNorm and no dropout"
    else:
        total, agree = n["large_lms"], n["very_low_or_none"]
        what = f"decoder LMs >= {C.LARGE_PARAMS:.0e} parameters with every rate <= {C.VERY_LOW:g}"
    share = n["share"]
    conditions = [
        Condition(f"share of {what} >= {C.SUPPORT_SHARE:g}", f"{agree}/{total} = {share:.3g}",
                  share >= C.SUPPORT_SHARE),
        Condition(f"share >= {C.PARTLY_SHARE:g}", f"{share:.3g}", share >= C.PARTLY_SHARE),
    ]
    criterion = row["criterion"].replace("not supported below", "otherwise not supported")
    return Statement(id=row["id"], group=GROUPS[row["id"]], text=TEXTS[row["id"]],
                     verdict=row["verdict"], criterion=criterion, conditions=conditions,
                     numbers=n, kind="descriptive")


@functools.lru_cache(maxsize=2)
def _survey(quick: bool) -> dict[str, Any]:
    from dropkit.lab.torchvision_compat import allow_torchvision_import

    note = allow_torchvision_import()
    s = C.Settings.quick() if quick else C.Settings()
    table = C.measure(s)
    if note:
        table["notes"] = [note]
    judged = {row["id"]: _statement(row) for row in C.judge([table])}
    figs = [Figure("config_survey", figure_png(fig),
                   "Default dropout rates read from the installed libraries' configurations "
                   "(left: transformers, against the default model's parameter count; right: "
                   "timm and torchvision CNN builders). Each number's source is in the table "
                   "of results.json (numbers.config_survey.rows).")
            for fig in C.figures([table])]
    return {"table": table, "judged": judged, "figures": figs, "markdown":
            C.table_markdown(table["rows"])}


def survey_claims(quick: bool = False, claim: str = "lab") -> dict[str, Any]:
    """The survey's table, its judged statements by id (those it could judge) and its figure
    (named ``<claim>_config_survey``: two claims show it).

    A survey that raises is reported in ``table["unavailable"]`` (the claim says so in its
    caveats and leaves both statements out) rather than failing the whole claim.
    """
    try:
        out = _survey(quick)
    except Exception as err:  # noqa: BLE001 - reported in the table and the claim's caveats
        return {"table": {"rows": [], "unavailable": [f"the survey failed: "
                                                      f"{type(err).__name__}: {err}"]},
                "judged": {}, "figures": [], "markdown": ""}
    return {**out, "judged": {k: v for k, v in out["judged"].items() if v is not None},
            "figures": [Figure(f"{claim}_{f.name}", f.png, f.caption) for f in out["figures"]]}
