"""A figure of the report: PNG bytes plus a caption, and the one way to render matplotlib to it.

`figure_png` checks the layout of every figure it renders (`dropkit.report.layout`): a figure
with overlapping text or an unreadable log axis is still rendered (a run is not lost to a
cosmetic fault), and each problem is logged as a warning on the ``dropkit.report`` logger, so
a full run shows them and the tests can assert there are none.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

from dropkit.report.layout import layout_problems

__all__ = ["Figure", "figure_png"]

log = logging.getLogger("dropkit.report")


@dataclass
class Figure:
    """A figure of a claim: PNG bytes plus a caption (rendered and embedded by the report)."""

    name: str
    png: bytes
    caption: str


def _label(fig: Any) -> str:
    """A name for log messages: the suptitle, else the first panel title."""
    texts = [t.get_text() for t in fig.texts] + [ax.get_title() for ax in fig.axes]
    return next((t for t in texts if t.strip()), "untitled figure")


def figure_png(fig: Any, dpi: int = 110) -> bytes:
    """Render a matplotlib figure to PNG bytes (tight bounding box) and close it; each layout
    problem is logged first (module docstring)."""
    import matplotlib.pyplot as plt

    try:
        for problem in layout_problems(fig):
            log.warning("figure %r: %s", _label(fig), problem)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()
