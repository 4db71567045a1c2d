"""Pure dropout functions.

Both scaling conventions are supported. With drop probability ``p`` and an independent
Bernoulli keep mask ``m ~ Bernoulli(1 - p)``:

* ``"inverted"`` (what ``torch.nn.Dropout`` does): ``y = m * x / (1 - p)`` while active,
  ``y = x`` while inactive. ``E[y] = x`` in both modes.
* ``"classic"`` (Srivastava et al., 2014): ``y = m * x`` while active, ``y = (1 - p) * x``
  while inactive (weight scaling at test time). ``E[y] = (1 - p) x`` in both modes.

A network trained with one convention gives the same test-time predictions as the same network
trained with the other after its next layer's weights are multiplied (classic -> inverted) by
``1 - p``; the two scalings differ by the constant ``1 - p`` everywhere.
"""

from __future__ import annotations

import torch

from dropkit._validate import check_choice, check_probability, check_tensor
from dropkit.errors import DropkitTypeError, expected

SCALINGS = ("inverted", "classic")


def keep_mask(
    shape: torch.Size | tuple[int, ...],
    p: float,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A 0/1 mask of ``shape`` with entries kept (1) with probability ``1 - p``.

    Drawn as ``U < 1 - p`` with ``U ~ Uniform[0, 1)`` from ``generator``: one uniform draw per
    entry, cheaper on CPU than ``bernoulli_`` and reproducible under a fixed generator.
    """
    u = torch.rand(shape, device=device, generator=generator)
    return (u < (1.0 - p)).to(dtype)


def dropout(
    x: torch.Tensor,
    p: float = 0.5,
    *,
    active: bool,
    scaling: str = "inverted",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Elementwise dropout with an explicit scaling convention.

    Args:
        x: input of any shape.
        p: drop probability, in [0, 1).
        active: draw a mask (training, or Monte Carlo inference) if True; otherwise apply the
            deterministic test-time transform of the chosen convention. Required: unlike
            ``F.dropout`` there is no silent default.
        scaling: ``"inverted"`` or ``"classic"`` (see the module docstring).
        generator: source of the mask, for reproducible draws.

    Returns:
        ``m * x / (1 - p)`` (inverted) or ``m * x`` (classic) when active;
        ``x`` (inverted) or ``(1 - p) * x`` (classic) when inactive.

    Shape:
        Output has the shape of ``x``. Gradients flow only through kept units.
    """
    check_tensor("x", x)
    p = check_probability("p", p)
    check_choice("scaling", scaling, SCALINGS)
    if not isinstance(active, bool):  # "no" would otherwise count as True
        raise DropkitTypeError(expected("active", "a bool (True or False)", repr(active)))
    if not active:
        return x if scaling == "inverted" or p == 0.0 else x * (1.0 - p)
    if p == 0.0:
        return x
    mask = keep_mask(x.shape, p, device=x.device, dtype=x.dtype, generator=generator)
    if scaling == "inverted":
        mask = mask / (1.0 - p)  # fold the scale into the mask: one multiply on x
    return x * mask
