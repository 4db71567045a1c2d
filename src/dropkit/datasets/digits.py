"""scikit-learn's bundled 8x8 digits (no download), split, standardised, and shifted copies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dropkit._validate import check_probability


@dataclass(frozen=True)
class Digits:
    """Train/test tensors: images ``(N, 1, 8, 8)`` in [0, 1], labels ``(N,)`` int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def flat_train(self) -> torch.Tensor:
        return self.x_train.flatten(1)  # (N, 64)

    @property
    def flat_test(self) -> torch.Tensor:
        return self.x_test.flatten(1)


def load_digits(*, test_fraction: float = 0.3, seed: int = 0,
                n_train: int | None = None) -> Digits:
    """The 1,797 digits of ``sklearn.datasets.load_digits``, split at random by ``seed``.

    Pixels are scaled from 0..16 to [0, 1]. ``n_train`` keeps only the first ``n_train`` rows of
    the (shuffled) training part, for small-data experiments.
    """
    try:
        from sklearn.datasets import load_digits as sk_load
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "dropkit's digits need scikit-learn: pip install 'dropkit[digits]'") from err
    check_probability("test_fraction", test_fraction)
    data = sk_load()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.tensor(data.target, dtype=torch.int64)
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(y)))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    if n_train is not None:
        train = train[:n_train]
    return Digits(x[train], y[train], x[test], y[test])


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate ``(N, 1, H, W)`` images about their centre by ``degrees`` (bilinear, zero fill)."""
    theta = torch.tensor(np.deg2rad(degrees), dtype=images.dtype)
    c, s = torch.cos(theta), torch.sin(theta)
    affine = torch.stack([torch.stack([c, -s, torch.zeros(())]),
                          torch.stack([s, c, torch.zeros(())])])  # (2, 3)
    grid = F.affine_grid(affine.expand(len(images), 2, 3), list(images.shape),
                         align_corners=False)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


def shift(images: torch.Tensor, pixels: int) -> torch.Tensor:
    """Translate ``(N, 1, H, W)`` images right and down by ``pixels`` (zero fill)."""
    out = torch.zeros_like(images)
    if pixels >= images.shape[-1]:
        return out
    out[..., pixels:, pixels:] = images[..., : images.shape[-2] - pixels,
                                        : images.shape[-1] - pixels]
    return out
