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
from dropkit.experiments.jobs import JobRunner, Outcome, job_runner, jobs_record
from dropkit.lab.base import VERDICTS, ClaimExperiment, ClaimResult, Figure, LabConfig, assemble

# the tables live in lab/registry.py (no torch, for a fast `--help`); re-exported here, where
# callers and tests have always found them
from dropkit.lab.registry import CLAIMS, GROUPS, STATEMENTS, claim_of, select_claims

__all__ = ["CLAIMS", "GROUPS", "STATEMENTS", "ClaimFailure", "ClaimJob", "LabRun", "claim_of",
           "run_claim_job", "run_lab", "select_claims"]

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


@dataclass(frozen=True)
class ClaimJob:
    """One job of a claim: its measurements for one ``seed``, its ``shared`` measurements, or
    (a claim module without an ``EXPERIMENT``) its whole ``run(cfg)``."""

    claim_id: str
    module: str
    part: str  # "seed", "shared" or "run"
    cfg: LabConfig
    seed: int | None = None


def _experiment(module: Any) -> ClaimExperiment[Any] | None:
    exp = getattr(module, "EXPERIMENT", None)
    return exp if isinstance(exp, ClaimExperiment) else None


def _claim_jobs(claim_id: str, module_name: str, cfg: LabConfig) -> list[ClaimJob]:
    try:
        exp = _experiment(importlib.import_module(module_name))
    except Exception:  # the job raises it again, so the claim is recorded as failed
        exp = None
    if exp is None:
        return [ClaimJob(claim_id, module_name, "run", cfg)]
    shared = [ClaimJob(claim_id, module_name, "shared", cfg)] if exp.shared is not None else []
    return shared + [ClaimJob(claim_id, module_name, "seed", cfg, s) for s in cfg.seeds]


def run_claim_job(job: ClaimJob) -> Any:
    """Run one `ClaimJob` (top level, so a worker process or a Ray worker can call it)."""
    module = importlib.import_module(job.module)
    exp = _experiment(module)
    if job.part == "run" or exp is None:
        return module.run(job.cfg)
    settings = exp.sized(job.cfg.quick)
    if job.part == "shared":
        assert exp.shared is not None
        return exp.shared(settings, tuple(job.cfg.seeds))
    assert job.seed is not None
    return exp.measure(settings, job.seed)


def _finish(claim_id: str, flat: Sequence[ClaimJob], outcomes: Sequence[Outcome[Any]],
            cfg: LabConfig) -> ClaimResult | ClaimFailure:
    """The claim's result from its finished jobs, or the failure of its first failed job (or
    of judging it); a failure is printed to stderr as it happens."""
    seconds = sum(o.seconds for o in outcomes)
    t0 = time.perf_counter()
    failed = sorted((o for o in outcomes if o.error is not None), key=lambda o: o.index)
    try:
        if failed:
            first = failed[0]
            failure = ClaimFailure(claim_id, first.error or "", first.traceback or "", seconds)
        else:
            by_index = sorted(outcomes, key=lambda o: o.index)
            jobs = [flat[o.index] for o in by_index]
            if jobs[0].part == "run":
                return _check_result(by_index[0].value, claim_id)
            exp = _experiment(importlib.import_module(jobs[0].module))
            assert exp is not None
            values: list[Any] = [o.value for o in by_index]
            pairs = list(zip(values, jobs, strict=True))
            shared: dict[str, Any] = next((v for v, j in pairs if j.part == "shared"), {})
            per_seed: list[dict[str, Any]] = [v for v, j in pairs if j.part == "seed"]
            result = assemble(exp, cfg, per_seed, shared, seconds)
            result = _check_result(result, claim_id)
            result.seconds = seconds + time.perf_counter() - t0
            claim_record(result)  # JSON-able now, or this claim fails (not the whole report)
            return result
    except Exception as err:  # recorded, printed and reported, never swallowed
        failure = ClaimFailure(claim_id, f"{type(err).__name__}: {err}", traceback.format_exc(),
                               seconds + time.perf_counter() - t0)
    print(f"dropkit lab: claim {claim_id!r} failed:\n{failure.traceback}", file=sys.stderr)
    return failure


def run_lab(cfg: LabConfig | None = None, *, claims: Sequence[str] | None = None,
            out: str | os.PathLike[str] = "lab-report", command: str | None = None,
            registry: Mapping[str, str] = CLAIMS,
            jobs_runner: JobRunner | None = None) -> LabRun:
    """Run ``claims`` (default: all of ``registry``, in its order) and write the report.

    Writes ``<out>/results.json`` and ``<out>/index.html`` as one set (either both new or
    both old if interrupted; ``dropkit.experiments.record``); ``out`` is checked writable
    before any claim runs. Torch runs with ``cfg.threads``
    threads; the caller's setting is restored afterwards. A claim's jobs (its seeds, its shared
    part) run on ``jobs_runner`` (default: ``cfg.workers`` local processes, or this process
    for one worker); the numbers do not depend on where they ran. A claim whose job raises is
    recorded as failed (traceback on stderr and in the report) and the other claims run.
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

    runner = jobs_runner if jobs_runner is not None else job_runner(cfg.workers, cfg.threads)
    check_positive_int("cfg.workers", cfg.workers)
    # progress bars inside claims only when they run here; workers' bars would interleave
    job_cfg = cfg if runner.in_process else dataclasses.replace(cfg, progress=False)
    plan = [_claim_jobs(claim_id, _module_name(registry[claim_id]), job_cfg) for claim_id in ids]
    flat = [job for claim_jobs in plan for job in claim_jobs]
    outcomes: dict[str, list[Outcome[Any]]] = {claim_id: [] for claim_id in ids}
    done: dict[str, ClaimResult | ClaimFailure] = {}
    previous_threads = torch.get_num_threads()
    started = datetime.now(timezone.utc)
    start = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    try:
        with progress_bar(total=len(flat), desc="dropkit lab", unit="job",
                          enabled=cfg.progress) as bar:
            for outcome in runner.run(run_claim_job, flat):
                job = flat[outcome.index]
                bar.update(1)
                bar.set_postfix_str(job.claim_id)
                outcomes[job.claim_id].append(outcome)
                if len(outcomes[job.claim_id]) == len(plan[ids.index(job.claim_id)]):
                    done[job.claim_id] = _finish(job.claim_id, flat, outcomes[job.claim_id],
                                                 cfg)
    finally:
        torch.set_num_threads(previous_threads)
    results = [r for c in ids if isinstance(r := done[c], ClaimResult)]
    failed = [f for c in ids if isinstance(f := done[c], ClaimFailure)]
    records = [claim_record(r) for r in results]
    figures = {r.id: list(r.figures) for r in results}
    seconds = time.perf_counter() - start
    document = {
        "claims": records,
        "failed": [dataclasses.asdict(f) for f in failed],
        "order": ids,
        # top level, so no reader can take a --quick run for evidence (report/html.py)
        "smoke_test": cfg.quick,
        "lab_config": jsonable(dataclasses.asdict(cfg)),
        "jobs": jsonable(jobs_record(runner)),  # where the jobs ran (a Ray cluster, processes)
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
