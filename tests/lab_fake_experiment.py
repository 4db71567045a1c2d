"""A claim written as a `ClaimExperiment`, small enough for runner tests, in a real module so that
spawned worker processes and Ray workers can import it.

``measure`` trains nothing: it draws from torch's global generator after seeding it (as the
lab's claims do) and from a generator of its own, so a job that did not seed would show up
as a different number. Seed 13 raises, for the failure tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from dropkit.lab.base import ClaimExperiment, Figure, Judged, Statement, judge, run_experiment

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5"
    "4e8a3d0000000049454e44ae426082")
FAIL_SEED = 13


@dataclass(frozen=True)
class FakeSettings:
    n: int = 1000
    min_effect: float = 0.0

    def quick(self) -> FakeSettings:
        return FakeSettings(n=10, min_effect=self.min_effect)


def measure(s: FakeSettings, seed: int) -> dict[str, Any]:
    if seed == FAIL_SEED:
        raise RuntimeError(f"seed {seed} <broke>")
    torch.manual_seed(seed)
    a = torch.randn(s.n, dtype=torch.float64)
    b = torch.rand(s.n, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return {"seed": seed, "effect": float((a.mean() + b.mean()).item()),
            "threads": torch.get_num_threads()}


def shared(s: FakeSettings, seeds: tuple[int, ...]) -> dict[str, Any]:
    return {"seeds": list(seeds), "n": s.n}


def judge_all(s: FakeSettings, per_seed: list[dict[str, Any]], sh: dict[str, Any]) -> Judged:
    j = judge([r["effect"] for r in per_seed], min_effect=s.min_effect, what="a fake effect")
    st = Statement("fake.one", "fake", "a fake statement", j.verdict, j.criterion,
                   numbers={"mean": j.mean, "se": j.se})
    return Judged([st], j.criterion, f"mean {j.mean}", {"per_seed": per_seed, "shared": sh},
                  setup="none", caveats=["fake"])


def figures(s: FakeSettings, per_seed: list[dict[str, Any]], sh: dict[str, Any]) -> list[Figure]:
    return [Figure("fake", PNG, f"{len(per_seed)} seeds")]


EXPERIMENT = ClaimExperiment(id="fake-exp", title="Fake experiment", claim="c",
                             settings=FakeSettings(), measure=measure, judge=judge_all,
                             figures=figures, shared=shared)


def run(cfg: Any) -> Any:
    return run_experiment(EXPERIMENT, cfg)
