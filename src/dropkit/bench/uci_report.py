"""Tables of UCI benchmark results against the published numbers (CSV and Markdown)."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dropkit.bench.uci_config import (
    PUBLISHED_2016,
    PUBLISHED_2018,
    PUBLISHED_SOURCES,
    UCIConfig,
)
from dropkit.bench.uci_protocol import UCIResult
from dropkit.experiments import record

__all__ = ["CSV_COLUMNS", "machine_info", "result_rows", "write_report"]

CSV_COLUMNS = (
    "dataset", "n_splits", "epochs", "mc_samples",
    "rmse_mean", "rmse_se", "ll_mean", "ll_se",
    "published_rmse", "published_rmse_se", "published_ll", "published_ll_se",
    "within_2se_rmse", "within_2se_ll", "within_2se_pub_rmse", "within_2se_pub_ll",
    "paper2016_rmse", "paper2016_ll", "rmse_standard_mean", "wall_s", "backend",
)


def within_2se(ours: float, ours_se: float, theirs: float | None,
               theirs_se: float | None) -> bool | None:
    """``|ours - theirs| <= 2 sqrt(se_ours^2 + se_theirs^2)``: the two-standard-error test of a
    difference of two independent means; ``None`` when nothing was published."""
    if theirs is None or theirs_se is None:
        return None
    return bool(abs(ours - theirs) <= 2.0 * float(np.hypot(ours_se, theirs_se)))


def within_2se_published(ours: float, theirs: float | None,
                         theirs_se: float | None) -> bool | None:
    """The stricter reading: ``|ours - theirs| <= 2 se_theirs`` (published SE only)."""
    if theirs is None or theirs_se is None:
        return None
    return bool(abs(ours - theirs) <= 2.0 * theirs_se)


def result_rows(results: Sequence[UCIResult]) -> list[dict[str, object]]:
    """One row per data set with our numbers, the published ones and the comparison."""
    rows = []
    for r in results:
        pub = PUBLISHED_2018.get(r.dataset)
        old = PUBLISHED_2016.get(r.dataset)
        pub_rmse, pub_ll = (pub[:2], pub[2:]) if pub else ((None, None), (None, None))
        rows.append({
            "dataset": r.dataset,
            "n_splits": len(r.splits),
            "epochs": r.epochs,
            "mc_samples": r.config.mc_samples,
            "rmse_mean": r.rmse_mean,
            "rmse_se": r.rmse_se,
            "ll_mean": r.ll_mean,
            "ll_se": r.ll_se,
            "published_rmse": pub[0] if pub else None,
            "published_rmse_se": pub[1] if pub else None,
            "published_ll": pub[2] if pub else None,
            "published_ll_se": pub[3] if pub else None,
            "within_2se_rmse": within_2se(r.rmse_mean, r.rmse_se, *pub_rmse),
            "within_2se_ll": within_2se(r.ll_mean, r.ll_se, *pub_ll),
            "within_2se_pub_rmse": within_2se_published(r.rmse_mean, *pub_rmse),
            "within_2se_pub_ll": within_2se_published(r.ll_mean, *pub_ll),
            "paper2016_rmse": old[0] if old else None,
            "paper2016_ll": old[1] if old else None,
            "rmse_standard_mean": float(np.mean([s.rmse_standard for s in r.splits])),
            "wall_s": r.wall_s,
            "backend": r.backend,
        })
    return rows


def machine_info() -> dict[str, object]:
    """Versions and hardware for the results file (``dropkit.experiments.record``)."""
    return record.environment()


def _fmt(x: object, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e-2 and x != 0 else f"{x:.{digits}f}"
    return str(x)


def _markdown(rows: list[dict[str, object]], results: Sequence[UCIResult],
              command: str | None, machine: dict[str, object]) -> str:
    lines = ["# UCI regression benchmark: MC dropout (Gal & Ghahramani)", ""]
    for r in results:
        changed = {k: v for k, v in r.config.to_dict().items()
                   # how, not what, is computed (splits_per_batch: only the seeds differ)
                   if k not in ("mc_chunk_elements", "backend", "splits_per_batch")
                   and v != getattr(UCIConfig(), k)}
        if changed:
            lines += [f"**{r.dataset}: not the published protocol** (changed: "
                      + ", ".join(f"{k}={v}" for k, v in changed.items()) + ").", ""]
    if command:
        lines += ["Command:", "", f"    {command}", ""]
    lines += [
        "| data set | splits | epochs | T | RMSE (ours) | RMSE 2018 | within 2 SE | "
        "LL (ours) | LL 2018 | within 2 SE | 2016 paper RMSE / LL | wall time (s), backend |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['dataset']} | {row['n_splits']} | {row['epochs']} | {row['mc_samples']} "
            f"| {_fmt(row['rmse_mean'])} ± {_fmt(row['rmse_se'])} "
            f"| {_fmt(row['published_rmse'])} ± {_fmt(row['published_rmse_se'])} "
            f"| {_fmt(row['within_2se_rmse'])} "
            f"| {_fmt(row['ll_mean'])} ± {_fmt(row['ll_se'])} "
            f"| {_fmt(row['published_ll'])} ± {_fmt(row['published_ll_se'])} "
            f"| {_fmt(row['within_2se_ll'])} "
            f"| {_fmt(row['paper2016_rmse'], 2)} / {_fmt(row['paper2016_ll'], 2)} "
            f"| {float(row['wall_s']):.0f}, {row['backend']} |"  # type: ignore[arg-type]
        )
    lines += [
        "",
        "Mean ± standard error over splits (std with ddof 0 / sqrt(n), as the original logs). "
        "'within 2 SE': |ours - published| <= 2 sqrt(SE_ours^2 + SE_published^2); the CSV "
        "also has the stricter |ours - published| <= 2 SE_published (within_2se_pub_*).",
        "",
        "Sources of the published numbers:",
        "",
        f"- 2018: {PUBLISHED_SOURCES['2018']}.",
        f"- 2016: {PUBLISHED_SOURCES['2016']}.",
        "",
        "## Chosen (p, tau) per split",
        "",
    ]
    for r in results:
        chosen = ", ".join(f"{s.split}:({s.p:g}, {s.tau:g})" for s in r.splits)
        lines.append(f"- {r.dataset}: {chosen}")
    lines += ["", "## Configuration", "", "```json"]
    lines.append(json.dumps(results[0].config.to_dict() if results else {}, indent=2))
    lines += ["```", "", "## Machine", "", "```json", json.dumps(machine, indent=2), "```", ""]
    return "\n".join(lines)


def write_report(results: Sequence[UCIResult], out_dir: str | os.PathLike[str], *,
                 command: str | None = None) -> tuple[Path, Path]:
    """Write ``uci.csv``, ``uci.md`` and ``uci.json`` (every split) into ``out_dir``, as one
    set: an interruption leaves the three old files or the three new ones."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = result_rows(results)
    machine = machine_info()
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    detail = {"command": command, "machine": machine,
              "results": [r.to_dict() for r in results]}
    record.write_result_set(out, {
        "uci.csv": table.getvalue(),
        "uci.md": _markdown(rows, results, command, machine),
        "uci.json": json.dumps(detail, indent=2) + "\n",
    })
    return out / "uci.csv", out / "uci.md"
