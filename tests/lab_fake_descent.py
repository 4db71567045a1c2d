"""A small claim in `ClaimExperiment` form (a shared part and per-seed measurements), in a
real module so that Ray workers and spawned processes can import it by name
(``tests.lab_fake_descent``): a few steps of gradient descent on a seeded regression, so
that every number depends on the seed and on float arithmetic done where the job ran."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from dropkit.experiments.claim import ClaimExperiment, Judged, Statement


@dataclass(frozen=True)
class Settings:
    rows: int = 64
    steps: int = 30

    def quick(self) -> Settings:
        return replace(self, steps=10)


def measure(settings: Settings, seed: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(settings.rows, 8, generator=g)
    y = x @ torch.randn(8, generator=g) + 0.1 * torch.randn(settings.rows, generator=g)
    w = torch.zeros(8, requires_grad=True)
    for _ in range(settings.steps):
        loss = ((x @ w - y) ** 2).mean()
        (grad,) = torch.autograd.grad(loss, w)
        w = (w - 0.1 * grad).detach().requires_grad_(True)
    w = w.detach()
    return {"loss": float(((x @ w - y) ** 2).mean()), "w": w.tolist()}


def shared(settings: Settings, seeds: tuple[int, ...]) -> dict[str, Any]:
    return {"scale": float(torch.randn(3, generator=torch.Generator().manual_seed(99)).sum()),
            "seeds": list(seeds)}


def judge(settings: Settings, per_seed: list[dict[str, Any]],
          shared_: dict[str, Any]) -> Judged:
    losses = [m["loss"] for m in per_seed]
    verdict = "supported" if max(losses) < 1.0 else "not supported"
    statement = Statement("fake.fits", "fake", "descent fits", verdict, "max loss < 1")
    return Judged([statement], "max loss < 1", f"max loss {max(losses):.4f}",
                  {"losses": losses, "weights": [m["w"] for m in per_seed], **shared_},
                  setup="gradient descent")


EXPERIMENT = ClaimExperiment(id="fake-exp", title="Fake experiment", claim="descent fits",
                             settings=Settings(), measure=measure, judge=judge,
                             figures=lambda s, p, sh: [], shared=shared)
