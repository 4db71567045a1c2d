"""Run the selected claims in order, record every number, write ``results.json`` and the page.

A claim that raises is not hidden: its traceback goes to stderr and into the report as a failed
section, the other claims still run, and `LabRun.ok` is false (the command exits non-zero).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import json
import math
import os
import shlex
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from dropkit._validate import check_positive_int
from dropkit.errors import DropkitTypeError, DropkitValueError, expected
from dropkit.experiments import record
from dropkit.experiments.claim import Statement, group_verdict
from dropkit.lab.base import VERDICTS, ClaimResult, Figure, LabConfig

# the tables live in lab/registry.py (no torch, for a fast `--help`); re-exported here, where
# callers and tests have always found them
from dropkit.lab.registry import CLAIMS, GROUPS, STATEMENTS, claim_of, select_claims

__all__ = ["CLAIMS", "GROUPS", "STATEMENTS", "ClaimFailure", "LabRun", "claim_of", "run_lab",
           "select_claims"]

#: The fields of a claim written into ``results.json["claims"]`` (figures go to the page;
#: ``statements`` are written by `statement_record`).
RESULT_FIELDS = ("id", "title", "claim", "setup", "verdict", "criterion", "key_number",
                 "numbers", "caveats", "config", "seeds", "seconds", "statements")

#: The fields of one statement in ``results.json["claims"][i]["statements"]``.
STATEMENT_FIELDS = ("id", "group", "text", "verdict", "criterion", "conditions", "numbers",
                    "kind")


@dataclass
class ClaimFailure:
    """A claim that raised (or returned something that is not a valid `ClaimResult`)."""

    id: str
    error: str  # "ExceptionType: message"
    traceback: str
    seconds: float


@dataclass
class LabRun:
    """What `run_lab` did: the results in order, the failures, and where the files are."""

    results: list[ClaimResult]
    failed: list[ClaimFailure]
    document: dict[str, Any]
    out: Path
    html_path: Path
    json_path: Path
    seconds: float
    figures: dict[str, list[Figure]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def _module_name(name: str) -> str:
    return name if "." in name else f"dropkit.lab.{name}"


def jsonable(value: Any, path: str = "numbers") -> Any:
    """``value`` as plain JSON types (tensors and numpy values become lists and floats,
    tuples lists, non-finite floats ``None``); anything else raises naming ``path``."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, torch.Tensor):
        return jsonable(value.detach().cpu().tolist(), path)
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return jsonable(tolist(), path)
    raise DropkitTypeError(f"{path} holds a {type(value).__name__}, which JSON cannot store")


def _check_result(result: object, claim_id: str) -> ClaimResult:
    if not isinstance(result, ClaimResult):
        raise DropkitTypeError(f"claim {claim_id!r} returned {type(result).__name__}, "
                               "not a ClaimResult")
    if result.id != claim_id:
        raise DropkitValueError(f"claim module for {claim_id!r} returned id {result.id!r}")
    if result.verdict not in VERDICTS:
        raise DropkitValueError(f"claim {claim_id!r} returned verdict {result.verdict!r}; "
                                f"expected one of {list(VERDICTS)}")
    for fig in result.figures:
        if not (isinstance(fig, Figure) and fig.png.startswith(b"\x89PNG")):
            raise DropkitValueError(f"claim {claim_id!r} has a figure that is not PNG bytes")
    if result.statements:
        bad = [s.id for s in result.statements
               if not isinstance(s, Statement) or s.verdict not in VERDICTS]
        if bad:
            raise DropkitValueError(f"claim {claim_id!r} has statements {bad} that are not "
                                    f"Statements with a verdict in {list(VERDICTS)}")
        derived = group_verdict(result.statements)
        if result.verdict != derived:
            raise DropkitValueError(f"claim {claim_id!r} returned verdict {result.verdict!r}, "
                                    f"but its statements give {derived!r}")
    return result


def statement_record(statement: Statement, path: str) -> dict[str, Any]:
    """The JSON record of one statement (`STATEMENT_FIELDS`; conditions as plain dicts)."""
    record = {name: getattr(statement, name) for name in STATEMENT_FIELDS}
    record["conditions"] = [dataclasses.asdict(c) for c in statement.conditions]
    return jsonable(record, f"{path}.{statement.id}")


def claim_record(result: ClaimResult) -> dict[str, Any]:
    """The JSON record of one claim (`RESULT_FIELDS` plus figure names and captions)."""
    record = {name: jsonable(getattr(result, name), f"{result.id}.{name}")
              for name in RESULT_FIELDS if name != "statements"}
    record["statements"] = [statement_record(s, f"{result.id}.statements")
                            for s in result.statements]
    record["figures"] = [{"name": f.name, "caption": f.caption} for f in result.figures]
    return record


def environment(threads: int) -> dict[str, Any]:
    """Library versions and hardware, as written into ``results.json``
    (``dropkit.experiments.record.environment``)."""
    return record.environment(threads)


def run_lab(cfg: LabConfig | None = None, *, claims: Sequence[str] | None = None,
            out: str | os.PathLike[str] = "lab-report", command: str | None = None,
            registry: Mapping[str, str] = CLAIMS) -> LabRun:
    """Run ``claims`` (default: all of ``registry``, in its order) and write the report.

    Writes ``<out>/results.json`` and ``<out>/index.html`` as one set (either both new or
    both old if interrupted; ``dropkit.experiments.record``); ``out`` is checked writable
    before any claim runs. Torch runs with ``cfg.threads``
    threads; the caller's setting is restored afterwards. A claim that raises is recorded as
    failed (traceback on stderr and in the report) and the next claim runs.
    """
    cfg = LabConfig() if cfg is None else cfg
    if not isinstance(cfg, LabConfig):
        raise DropkitTypeError(expected("cfg", "a LabConfig", type(cfg).__name__))
    check_positive_int("cfg.threads", cfg.threads)
    if not cfg.seeds or not all(isinstance(s, int) and s >= 0 for s in cfg.seeds):
        raise DropkitValueError(expected("cfg.seeds", "a non-empty tuple of ints >= 0",
                                         repr(cfg.seeds)))
    ids = select_claims(claims, registry)
    # before any claim runs: a folder that cannot take the results fails now, not in an hour
    out_dir = record.check_output_dir(out, "out")
    command = command if command is not None else " ".join(shlex.quote(a) for a in sys.argv)

    from dropkit._progress import progress_bar

    results: list[ClaimResult] = []
    failed: list[ClaimFailure] = []
    records: list[dict[str, Any]] = []
    figures: dict[str, list[Figure]] = {}
    previous_threads = torch.get_num_threads()
    started = datetime.now(timezone.utc)
    start = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    try:
        with progress_bar(ids, desc="dropkit lab", unit="claim", enabled=cfg.progress) as bar:
            for claim_id in bar:
                bar.set_postfix_str(claim_id)
                t0 = time.perf_counter()
                try:
                    module = importlib.import_module(_module_name(registry[claim_id]))
                    result = _check_result(module.run(cfg), claim_id)
                    claim_json = claim_record(result)
                except Exception as err:  # recorded, printed and reported, never swallowed
                    tb = traceback.format_exc()
                    print(f"dropkit lab: claim {claim_id!r} failed:\n{tb}", file=sys.stderr)
                    failed.append(ClaimFailure(claim_id, f"{type(err).__name__}: {err}", tb,
                                               time.perf_counter() - t0))
                    continue
                results.append(result)
                records.append(claim_json)
                figures[claim_id] = list(result.figures)
    finally:
        torch.set_num_threads(previous_threads)
    seconds = time.perf_counter() - start
    document = {
        "claims": records,
        "failed": [dataclasses.asdict(f) for f in failed],
        "order": ids,
        # top level, so no reader can take a --quick run for evidence (report/html.py)
        "smoke_test": cfg.quick,
        "lab_config": jsonable(dataclasses.asdict(cfg)),
        "command": command,
        "started_utc": started.isoformat(timespec="seconds"),
        "wall_seconds": seconds,
        **environment(cfg.threads),
    }
    from dropkit.report.html import render_html

    json_path, html_path = out_dir / "results.json", out_dir / "index.html"
    # one set: an interrupted run leaves the old results.json AND index.html, or both new
    record.write_result_set(out_dir, {
        json_path.name: json.dumps(document, indent=2, allow_nan=False) + "\n",
        html_path.name: render_html(document, figures),
    })
    return LabRun(results, failed, document, out_dir, html_path, json_path, seconds, figures)
