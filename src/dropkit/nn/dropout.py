"""`Dropout`: the module twin of `dropkit.functional.dropout`."""

from __future__ import annotations

import torch
from torch import nn

from dropkit._validate import check_choice, check_probability
from dropkit.functional import SCALINGS, dropout


class Dropout(nn.Module):
    """Dropout with a choice of scaling convention; active while ``self.training``.

    Args:
        p: drop probability in [0, 1).
        scaling: ``"inverted"`` (scale kept units by 1/(1-p) while training, identity at test;
            as ``torch.nn.Dropout``) or ``"classic"`` (no scaling while training, multiply by
            ``1 - p`` at test).
        generator: optional generator for the masks (reproducible training and MC sampling).

    Shape:
        Input: any shape. Output: the same shape.

    ``dropkit.mc_mode`` recognises this module and switches it on for Monte Carlo inference.
    """

    def __init__(
        self, p: float = 0.5, scaling: str = "inverted", generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.p = check_probability("p", p)
        self.scaling = check_choice("scaling", scaling, SCALINGS)
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, active=self.training, scaling=self.scaling,
                       generator=self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, scaling={self.scaling!r}"
