"""Counter-evidence for the scale claim: early dropout, and what dropout costs, when underfitting.

Liu et al. ("Dropout Reduces Underfitting", ICML 2023) report that dropout used only in the
first part of training (*early dropout*) lowers the final loss of models that underfit. Here the
underfitting regime is the scale claim's stream: the student sees its largest training set once
(one pass, ``steps`` Adam steps of ``batch_size``). Three students per seed, from the same
initial weights and the same batches: no dropout, standard dropout (rate ``p`` throughout) and
early dropout (rate ``p`` for the first ``early_fraction`` of the steps, then 0). Every
``eval_every`` steps the test excess risk (KL to the teacher, as in `dropkit.lab.scale`) is
recorded, and the CPU seconds of the training steps are measured (evaluation excluded).

Slowing: the steps each student needs to reach a target, the excess risk the no-dropout student
has after ``target_fraction`` of its steps (a level it is known to reach); a student that never
reaches it within the budget is counted at twice the budget (censored; marked in the numbers).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dropkit.lab.train import mlp, seeded

VARIANTS = ("none", "standard", "early")


@dataclass(frozen=True)
class EarlySettings:
    """Every rate and length of the experiment (written into the result's config)."""

    p: float = 0.1
    early_fraction: float = 0.2  # dropout on for this fraction of the steps (Liu et al.)
    eval_every: int = 40  # steps between evaluations of the test excess risk
    target_fraction: float = 0.5  # target = none's risk after this fraction of the steps

    def quick(self) -> EarlySettings:
        """The smoke-test size (the scale claim's quick run has 50 steps)."""
        return replace(self, eval_every=10)


def set_dropout(model: nn.Module, p: float) -> None:
    """Set the rate of every ``nn.Dropout`` in ``model`` (the early schedule's switch)."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = p


def train_curve(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, *, steps: int,
                batch_size: int, lr: float, seed: int, p: float, early_steps: int | None,
                evaluate: Any, eval_every: int) -> dict[str, Any]:
    """One pass of minibatch Adam over ``(x, y)`` in a seeded order (``steps`` batches), with
    dropout ``p`` (switched to 0 after ``early_steps`` when given). Returns the evaluation curve
    ``[(step, value)]`` and the CPU seconds spent in training steps."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    curve = [(0, evaluate(model.eval()))]  # eval mode: dropout off, no random numbers drawn
    seconds = 0.0
    with seeded(seed):
        order = torch.randperm(len(x))
        set_dropout(model, p)
        model.train()
        for step in range(steps):
            if early_steps is not None and step == early_steps:
                set_dropout(model, 0.0)
            idx = order[(step * batch_size) % len(x):][:batch_size]
            t0 = time.process_time()
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            seconds += time.process_time() - t0
            if (step + 1) % eval_every == 0 or step + 1 == steps:
                model.eval()
                curve.append((step + 1, evaluate(model)))
                model.train()
    model.eval()
    return {"curve": curve, "train_cpu_s": seconds}


def steps_to(curve: list[tuple[int, float]], target: float, budget: int) -> tuple[float, bool]:
    """The first recorded step at which the curve is at or below ``target`` (reached=True), or
    twice the budget when it never is (reached=False)."""
    for step, value in curve:
        if value <= target:
            return float(step), True
    return float(2 * budget), False


def measure(x: torch.Tensor, y: torch.Tensor, *, d_in: int, hidden: list[int], classes: int,
            steps: int, batch_size: int, lr: float, seed: int, e: EarlySettings,
            evaluate: Any) -> dict[str, Any]:
    """The three students of one seed on the stream ``(x, y)`` (see the module docstring)."""
    out: dict[str, Any] = {}
    for variant in VARIANTS:
        with seeded(seed):
            model = mlp(d_in, hidden, classes, p=e.p)
        p = 0.0 if variant == "none" else e.p
        early = round(e.early_fraction * steps) if variant == "early" else None
        out[variant] = train_curve(model, x, y, steps=steps, batch_size=batch_size, lr=lr,
                                   seed=seed, p=p, early_steps=early, evaluate=evaluate,
                                   eval_every=e.eval_every)
    none_curve = out["none"]["curve"]
    at = max(1, round(e.target_fraction * steps))
    target = next(v for s, v in none_curve if s >= at)
    for variant in VARIANTS:
        r = out[variant]
        r["final"] = r["curve"][-1][1]
        r["steps_to_target"], r["reached_target"] = steps_to(r["curve"], target, steps)
        r["cpu_s_per_step"] = r["train_cpu_s"] / steps
        r["cpu_s_to_target"] = r["cpu_s_per_step"] * r["steps_to_target"]
    return {"target": target, "target_step": at, **out}


def log_ratio(a: float, b: float) -> float:
    """log(a / b) for positive step counts."""
    return math.log(a / b)
