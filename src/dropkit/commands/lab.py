"""`dropkit lab`: run the claims lab and write ``<out>/index.html`` and ``<out>/results.json``.

An ``--out`` folder that already holds a report is refused (exit 2, before any claim runs)
unless ``--force`` is given: a long run must not silently replace an earlier one.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dropkit.commands._common import seeds_flag
from dropkit.errors import DropkitValueError, expected
from dropkit.experiments import record
from dropkit.lab.base import LabConfig
from dropkit.lab.registry import CLAIMS, GROUPS, claim_of
from dropkit.report.html import SMOKE_TEST_TEXT, is_smoke_test

if TYPE_CHECKING:
    from dropkit.lab.runner import LabRun

#: The files of a report; an --out holding any of them is an earlier report.
REPORT_FILES = ("results.json", "index.html")


def _ids(text: str) -> list[str]:
    ids = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in ids if claim_of(c) is None]
    if unknown or not ids:
        raise DropkitValueError(expected(
            "--claims", f"comma-separated claim ids from {list(CLAIMS)}, groups from "
                        f"{sorted(GROUPS)} or statement ids such as bn.recipe", repr(text)))
    return ids


def _count(flag: str, text: str, what: str = "a positive integer") -> int:
    """A positive integer flag; anything else is a DropkitValueError naming ``flag``."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise DropkitValueError(expected(flag, what, repr(text)))
    return n


def _threads(text: str) -> int:
    return _count("--threads", text)


def _workers(text: str | None, threads: int, quick: bool = False) -> int:
    """``--workers``: a positive integer, or ``auto`` (one per CPU this process may use, each
    with ``--threads`` torch threads; also when not given). ``auto`` with ``--quick`` is 1: a
    smoke test's jobs are too small to repay a worker's start-up (measured on 2 cores:
    ``--quick`` took 65.7 s with 2 workers, 50.4 s with 1)."""
    if text is None or text == "auto":
        from dropkit.experiments.jobs import available_cpus

        return 1 if quick else max(1, available_cpus() // threads)
    return _count("--workers", text, "a positive integer or 'auto'")


def check_not_a_report(out: str, force: bool) -> None:
    """Refuse an ``--out`` that holds a report (unless ``force``), naming when it was made."""
    found = [name for name in REPORT_FILES if (Path(out) / name).is_file()]
    if not found or force:
        return
    started = ""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):  # only a detail
        started = str(json.loads((Path(out) / "results.json").read_text())["started_utc"])
    when = f" from a run started {started}" if started else ""
    raise DropkitValueError(expected(
        "--out", "a folder without a report (pass --force to replace it, or choose another "
        "--out)", f"{out!r}, which holds {' and '.join(found)}{when}"))


def command_line(args: argparse.Namespace) -> str:
    """The command with every option spelled out (what results.json records)."""
    parts = ["dropkit", "lab"] + (["--quick"] if args.quick else [])
    parts += ["--out", args.out, "--seeds", args.seeds, "--threads", args.threads]
    if args.ray is not None:  # the jobs ran on Ray: its address (empty: a local cluster)
        parts += ["--ray", args.ray] if args.ray else ["--ray"]
    else:
        parts += ["--workers", args.workers if args.workers is not None else "auto"]
    parts += ["--claims", args.claims] if args.claims is not None else []
    parts += [] if args.progress else ["--no-progress"]
    parts += ["--force"] if args.force else []
    return " ".join(shlex.quote(str(p)) for p in parts)


def machine_line(document: dict[str, Any]) -> str:
    """The CPU and threads the numbers were measured on (they differ slightly between CPU
    models; see the README)."""
    hw = document.get("hardware", {})
    return (f"Machine: {hw.get('cpu', 'unknown CPU')}, {hw.get('cores', '?')} cores, "
            f"{hw.get('threads', '?')} torch thread(s)")


def summary_table(run: LabRun) -> str:
    """The claim / verdict / key number table printed at the end (plain text); a smoke test
    says so above and below it."""
    rows = [(r.id, r.verdict, r.key_number) for r in run.results]
    rows += [(f.id, "FAILED", f.error) for f in run.failed]
    order = {c: i for i, c in enumerate(run.document.get("order", []))}
    rows.sort(key=lambda r: order.get(r[0], len(order)))
    w0 = max([len("claim")] + [len(r[0]) for r in rows])
    w1 = max([len("verdict")] + [len(r[1]) for r in rows])
    lines = [f"{'claim':<{w0}}  {'verdict':<{w1}}  key number", f"{'-' * w0}  {'-' * w1}  ---"]
    lines += [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    if is_smoke_test(run.document):
        banner = f"*** {SMOKE_TEST_TEXT} ***"
        lines = [banner, *lines, banner]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    threads = _threads(args.threads)
    if args.ray is not None and args.workers is not None:
        raise DropkitValueError(expected(
            "--workers", "no --workers with --ray (Ray runs one job per --threads CPUs of its "
            "cluster)", repr(args.workers)))
    workers = _workers(args.workers, threads, args.quick) if args.ray is None else 1
    cfg = LabConfig(quick=args.quick, seeds=seeds_flag(args.seeds), threads=threads,
                    progress=args.progress, workers=workers)
    # `--claims ''` is a mistake, not "all claims": only a missing flag means all
    claims = _ids(args.claims) if args.claims is not None else None
    check_not_a_report(args.out, args.force)  # before any claim runs
    record.check_output_dir(args.out, "--out")
    from dropkit.lab.runner import run_lab  # imports torch: only once the arguments are checked

    runner = None
    if args.ray is not None:
        from dropkit.distributed.jobs import RayJobs

        runner = RayJobs(args.ray or None, threads=threads)
        cfg = dataclasses.replace(cfg, workers=runner.workers)  # connects: the cluster's CPUs
    run = run_lab(cfg, claims=claims, out=args.out, command=command_line(args),
                  jobs_runner=runner)
    print(summary_table(run))
    print(machine_line(run.document))
    print(f"\nReport: {run.html_path.resolve()}\nNumbers: {run.json_path.resolve()}\n"
          f"Wall time: {run.seconds:.1f} s")
    if not run.ok:
        print(f"dropkit lab: {len(run.failed)} claim(s) failed: "
              f"{', '.join(f.id for f in run.failed)} (see the report)", file=sys.stderr)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dropkit lab``; its flags map one-to-one onto `LabConfig` fields."""
    default = LabConfig()
    p = subparsers.add_parser(
        "lab", help="test common claims about dropout and write an HTML report",
        description="Run the claims lab: each claim about dropout is measured on small "
        "data that needs no download, judged by a stated criterion, and written to "
        "<out>/index.html (self-contained) and <out>/results.json.")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes, for a smoke test (under a minute); not evidence")
    p.add_argument("--out", default="lab-report",
                   help="output folder (default: lab-report); one that already holds a "
                   "report is refused unless --force")
    p.add_argument("--force", action="store_true",
                   help="replace the report already in --out")
    p.add_argument("--claims", default=None,
                   help=f"comma-separated claim ids, groups (bn, scale, ...) or statement ids "
                        f"(bn.recipe): each selects the claim that judges it (default: all of "
                        f"{','.join(CLAIMS)})")
    p.add_argument("--seeds", default=",".join(str(s) for s in default.seeds),
                   help="comma-separated seeds (default: %(default)s)")
    p.add_argument("--threads", default=str(default.threads),
                   help="torch threads (default: %(default)s)")
    p.add_argument("--workers", default=None,
                   help="jobs (a claim's seeds) run at once, each in its own process with "
                        "--threads torch threads; 'auto': one per CPU (the default; 1 with "
                        "--quick). The numbers do not depend on it")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the jobs as Ray tasks: alone for a local cluster, or a cluster "
                        "address ('auto', 'ray://head:10001'); one job per --threads CPUs of "
                        "the cluster (not with --workers). The numbers do not depend on it")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bars")
    p.set_defaults(func=main, progress=default.progress, force=False, extras=_extras)


def _extras(args: argparse.Namespace) -> tuple[str, ...]:
    """The lab's extra, and Ray's with --ray (checked before any work)."""
    return ("lab", "ray") if args.ray is not None else ("lab",)
