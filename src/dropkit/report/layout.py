"""An automated look at a drawn matplotlib figure: does any text sit on another text, does text
run into another panel, and can a log axis be read?

The check draws the figure (Agg) and measures the window extent, in pixels, of every piece of
text a reader sees: the tick labels that are drawn (those inside the view limits), axis labels
and offset texts, titles, free text, and each legend as one box; secondary axes belong to
their parent panel. It reports:

* two text boxes that intersect by more than ``tol`` pixels in both directions;
* a text box of one panel that intersects the plotting area of another panel (a y-label
  running into the next panel) or, for figure-level text (suptitle, figure legend), any panel;
* a log or symlog axis whose labelled ticks do not reach the data (`unreadable_log_axes`).

`layout_problems` returns these as sentences (empty when the figure is clean); the report's
`figure_png` logs them, and the tests assert there are none for every lab figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Boxes must intersect by more than this many pixels in both directions to count: text that
#: merely touches (anti-aliasing, rounding of extents) is not an overlap.
TOL_PX = 1.0


@dataclass(frozen=True)
class TextBox:
    """A piece of text as drawn: where it is (``x0, y0, x1, y1`` in pixels), what it says,
    and the panel it belongs to (``None`` for figure-level text)."""

    what: str
    x0: float
    y0: float
    x1: float
    y1: float
    panel: int | None


def _box(what: str, artist: Any, renderer: Any, panel: int | None) -> TextBox | None:
    ext = artist.get_window_extent(renderer)
    if ext.width <= 0 or ext.height <= 0:
        return None
    return TextBox(what, float(ext.x0), float(ext.y0), float(ext.x1), float(ext.y1), panel)


def _shown(text: Any) -> bool:
    return bool(text.get_visible() and text.get_text().strip())


def _drawn_ticks(axis: Any) -> list[Any]:
    """The ticks matplotlib draws (inside the view limits), major and minor."""
    # `_update_ticks` is what `Axis.draw` calls to choose them; the public `get_major_ticks`
    # also holds ticks outside the view whose labels are never drawn
    return list(axis._update_ticks())


def _tick_labels(axis: Any) -> list[tuple[float, Any]]:
    """``(location, label)`` of every drawn, visible, non-empty tick label of ``axis``."""
    out = []
    for tick in _drawn_ticks(axis):
        for label in (tick.label1, tick.label2):
            if _shown(label):
                out.append((float(tick.get_loc()), label))
    return out


def _axis_boxes(axis: Any, name: str, renderer: Any, panel: int) -> list[TextBox | None]:
    boxes = [_box(f"{name} tick label {label.get_text()!r}", label, renderer, panel)
             for _, label in _tick_labels(axis)]
    if _shown(axis.label):
        boxes.append(_box(f"{name} label {axis.label.get_text()!r}", axis.label, renderer,
                          panel))
    if _shown(axis.offsetText):
        boxes.append(_box(f"{name} offset {axis.offsetText.get_text()!r}", axis.offsetText,
                          renderer, panel))
    return boxes


def _panel_boxes(ax: Any, where: str, renderer: Any, panel: int) -> list[TextBox | None]:
    from matplotlib.legend import Legend
    from matplotlib.text import Text

    boxes = _axis_boxes(ax.xaxis, f"{where} x", renderer, panel)
    boxes += _axis_boxes(ax.yaxis, f"{where} y", renderer, panel)
    for child in ax.get_children():
        if isinstance(child, Legend) and child.get_visible():
            boxes.append(_box(f"{where} legend", child, renderer, panel))
        elif isinstance(child, Text) and _shown(child):
            boxes.append(_box(f"{where} text {child.get_text()!r}", child, renderer, panel))
    for k, sub in enumerate(getattr(ax, "child_axes", [])):  # secondary axes
        boxes += _panel_boxes(sub, f"{where} secondary axis {k + 1}", renderer, panel)
    return boxes


def text_boxes(fig: Any) -> list[TextBox]:
    """Every piece of text of ``fig`` as drawn (the figure is drawn first)."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes: list[TextBox | None] = []
    for i, ax in enumerate(fig.axes):
        boxes += _panel_boxes(ax, f"panel {i + 1}", renderer, i)
    for t in fig.texts:
        if isinstance(t, Text) and _shown(t):
            boxes.append(_box(f"figure text {t.get_text()!r}", t, renderer, None))
    for legend in fig.legends:
        boxes.append(_box("figure legend", legend, renderer, None))
    return [b for b in boxes if b is not None]


def _intersection(a: TextBox | tuple[float, float, float, float],
                  b: TextBox) -> tuple[float, float]:
    ax0, ay0, ax1, ay1 = (a.x0, a.y0, a.x1, a.y1) if isinstance(a, TextBox) else a
    return min(ax1, b.x1) - max(ax0, b.x0), min(ay1, b.y1) - max(ay0, b.y0)


def overlapping_text(boxes: list[TextBox], tol: float = TOL_PX) -> list[tuple[TextBox, TextBox]]:
    """Pairs of boxes that intersect by more than ``tol`` pixels in both directions."""
    pairs = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            w, h = _intersection(a, b)
            if w > tol and h > tol:
                pairs.append((a, b))
    return pairs


def text_in_other_panels(fig: Any, boxes: list[TextBox],
                         tol: float = TOL_PX) -> list[tuple[TextBox, int]]:
    """``(box, panel)`` for text that lies on the plotting area of a panel it does not belong
    to (figure-level text on any panel)."""
    areas = [ax.get_window_extent() for ax in fig.axes]
    hits = []
    for box in boxes:
        for j, area in enumerate(areas):
            if box.panel == j:
                continue
            w, h = _intersection((area.x0, area.y0, area.x1, area.y1), box)
            if w > tol and h > tol:
                hits.append((box, j))
    return hits


def _scaled(axis: Any, values: list[float]) -> list[float]:
    """``values`` in the axis's scale space (log10 for a log axis)."""
    import numpy as np

    return [float(v) for v in axis.get_transform().transform(np.asarray(values, float))]


def unreadable_log_axes(fig: Any) -> list[str]:
    """Log or symlog axes that cannot be read where the data are.

    On each such axis, with the labelled ticks inside the view limits and the data (clipped
    to the view) measured in scale space (decades for a log axis): fewer than two labelled
    ticks, or data reaching further beyond the outermost labelled tick than the widest gap
    between two labelled ticks (points the labels give no scale for).
    """
    fig.canvas.draw()
    found = []
    for i, ax in enumerate(fig.axes):
        for name, axis, (dlo, dhi) in (("x", ax.xaxis, ax.dataLim.intervalx),
                                       ("y", ax.yaxis, ax.dataLim.intervaly)):
            scale = axis.get_scale()
            if scale not in ("log", "symlog"):
                continue
            lo, hi = sorted(axis.get_view_interval())
            locs = sorted({loc for loc, _ in _tick_labels(axis) if lo <= loc <= hi})
            where = f"panel {i + 1}: the {scale} {name} axis"
            if len(locs) < 2:
                found.append(f"{where} has {len(locs)} labelled tick(s) between {lo:.3g} and "
                             f"{hi:.3g}")
                continue
            if not (dlo <= dhi):  # no data on this axis
                continue
            d0, d1 = max(dlo, lo), min(dhi, hi)
            if scale == "log":
                d0 = max(d0, min(locs) * 1e-12)  # a log axis cannot place values <= 0
            t = _scaled(axis, locs)
            gap = max(b - a for a, b in zip(t[:-1], t[1:], strict=True))
            s0, s1 = _scaled(axis, [d0, d1])
            beyond = max(t[0] - s0, s1 - t[-1], 0.0)
            if beyond > gap:
                found.append(f"{where} has data from {d0:.3g} to {d1:.3g} but labelled ticks "
                             f"only from {locs[0]:.3g} to {locs[-1]:.3g}")
    return found


def layout_problems(fig: Any, tol: float = TOL_PX) -> list[str]:
    """Every layout problem of ``fig`` as a sentence (module docstring); empty when clean."""
    boxes = text_boxes(fig)
    problems = [f"{a.what} overlaps {b.what}" for a, b in overlapping_text(boxes, tol)]
    problems += [f"{box.what} runs into panel {j + 1}"
                 for box, j in text_in_other_panels(fig, boxes, tol)]
    return problems + unreadable_log_axes(fig)
