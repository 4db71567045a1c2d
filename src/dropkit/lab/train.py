"""A small, seeded training loop shared by the demo and the lab experiments."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dropkit._progress import progress_bar


@dataclass(frozen=True)
class TrainConfig:
    """Minibatch Adam on cross-entropy (or MSE with ``loss="mse"``)."""

    epochs: int = 100
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    loss: str = "cross_entropy"
    seed: int = 0


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block from torch's global RNG seeded by ``seed``; the caller's stream is restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, *,
          progress: str | None = None) -> nn.Module:
    """Train ``model`` in place on ``(x, y)`` and return it in eval mode.

    The shuffling and dropout masks come from ``cfg.seed`` (torch's global RNG is forked, so the
    caller's stream is untouched). ``progress``: a description to show a per-epoch progress bar.
    """
    loss_fn = F.cross_entropy if cfg.loss == "cross_entropy" else F.mse_loss
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    with seeded(cfg.seed):
        model.train()
        n = len(x)
        for _ in progress_bar(range(cfg.epochs), desc=progress, enabled=progress is not None,
                              leave=False, unit="epoch"):
            order = torch.randperm(n)
            for i in range(0, n, cfg.batch_size):
                idx = order[i:i + cfg.batch_size]
                opt.zero_grad(set_to_none=True)
                loss_fn(model(x[idx]), y[idx]).backward()
                opt.step()
    return model.eval()


def mlp(d_in: int, hidden: list[int], d_out: int, *, p: float = 0.0,
        input_p: float = 0.0) -> nn.Sequential:
    """Linear-ReLU-Dropout(p) blocks, optional input dropout, then a linear head."""
    layers: list[nn.Module] = [nn.Dropout(input_p)] if input_p > 0 else []
    width = d_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(p)]
        width = h
    layers.append(nn.Linear(width, d_out))
    return nn.Sequential(*layers)
