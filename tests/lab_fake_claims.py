"""`dropkit lab` with two fake claims, for tests that run it in a subprocess (and interrupt it).

    python -m tests.lab_fake_claims RUN_ID OUT [--sleep S]

Each claim prints ``claim <id> ran`` to stderr, sleeps S seconds and reports ``run RUN_ID`` as
its key number, so a test can tell which run wrote ``results.json`` and ``index.html``.
"""

from __future__ import annotations

import sys
import time
import types

from dropkit.lab.base import ClaimResult, LabConfig

IDS = ("fake-a", "fake-b")


def _module(claim_id: str, run_id: str, sleep: float) -> types.ModuleType:
    mod = types.ModuleType(f"fake_claims.{claim_id}")

    def run(cfg: LabConfig) -> ClaimResult:
        print(f"claim {claim_id} ran", file=sys.stderr, flush=True)
        time.sleep(sleep)
        return ClaimResult(id=claim_id, title=f"Fake {claim_id}", claim="c", setup="s",
                           verdict="supported", criterion="none", key_number=f"run {run_id}",
                           numbers={"run": run_id}, seeds=list(cfg.seeds))

    mod.run = run  # type: ignore[attr-defined]
    return mod


def install(run_id: str, sleep: float = 0.0) -> None:
    """Replace the lab's claims (in place: the command and the runner share the dict)."""
    from dropkit.lab import runner

    sys.modules["fake_claims"] = types.ModuleType("fake_claims")
    for claim_id in IDS:
        sys.modules[f"fake_claims.{claim_id}"] = _module(claim_id, run_id, sleep)
    runner.CLAIMS.clear()
    runner.CLAIMS.update({c: f"fake_claims.{c}" for c in IDS})


if __name__ == "__main__":
    import signal

    from dropkit.cli import main

    args = sys.argv[1:]
    sleep = float(args[args.index("--sleep") + 1]) if "--sleep" in args else 0.0
    install(args[0], sleep)
    # --force: the interrupt test reruns into the same --out on purpose
    code = main(["lab", "--out", args[1], "--seeds", "0", "--workers", "1", "--no-progress",
                 "--force"])
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as `dropkit.cli.entry` does, after the command
    sys.exit(code)
