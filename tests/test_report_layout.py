"""The figure layout check (`dropkit.report.layout`): overlaps against an independent
reference (the pixels each text inks when drawn alone), text running into another panel, log
axes without labels where the data are; and `figure_png` logging what it finds.

The lab's own figures are checked where the lab's tests draw them at quick size (every
claim's test runs it): `tests/conftest.py` fails a lab test whose figures log a layout
problem (see LAB_FIGURE_FIXES.patch until it is merged)."""

from __future__ import annotations

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.ticker import NullFormatter, ScalarFormatter  # noqa: E402

from dropkit.report.figure import figure_png  # noqa: E402
from dropkit.report.layout import (  # noqa: E402
    layout_problems,
    overlapping_text,
    text_boxes,
    text_in_other_panels,
    unreadable_log_axes,
)


def _ink(fig, draw) -> np.ndarray:  # noqa: ANN001
    """Pixels (bool, H x W) inked by ``draw(fig)`` alone on a blank copy of the canvas."""
    for t in list(fig.texts):
        t.remove()
    draw(fig)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return (rgba[..., :3] < 250).any(axis=-1)


@pytest.mark.parametrize("dx", [0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.45])
def test_overlap_agrees_with_the_ink_of_each_text(dx: float) -> None:
    """Two texts dx apart: whenever their ink touches, the check reports an overlap; when
    their boxes are clear of each other (measured here from the renderer), it reports none."""
    fig = plt.figure(figsize=(4, 1), dpi=100)
    a = _ink(fig, lambda f: f.text(0.1, 0.4, "overlapping words", fontsize=12))
    b = _ink(fig, lambda f: f.text(0.1 + dx, 0.4, "overlapping words", fontsize=12))
    fig.text(0.1, 0.4, "overlapping words", fontsize=12)
    boxes = text_boxes(fig)
    assert len(boxes) == 2
    width = boxes[0].x1 - boxes[0].x0  # the same text: the same width
    found = overlapping_text(boxes)
    if (a & b).any():
        assert found, dx
    if dx * 400 > width + 2:  # 4 in x 100 dpi: dx in pixels
        assert not found, dx
    plt.close(fig)


def test_overlap_boxes_are_the_drawn_extents() -> None:
    fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
    t = ax.text(0.5, 0.5, "label", transform=ax.transAxes)
    ax.set_xlabel("x label")
    boxes = {b.what: b for b in text_boxes(fig)}
    ext = t.get_window_extent(fig.canvas.get_renderer())
    assert (boxes["panel 1 text 'label'"].x0, boxes["panel 1 text 'label'"].y1) == \
        pytest.approx((ext.x0, ext.y1))
    assert "panel 1 x label 'x label'" in boxes
    assert layout_problems(fig) == []
    plt.close(fig)


def test_a_y_label_into_the_next_panel_and_crowded_ticks() -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(6, 3), dpi=100)
    fig.subplots_adjust(wspace=0.02)
    ax2.set_ylabel("a y label placed in the gap")
    ax2.tick_params(labelleft=False)  # only the label is left of panel 2
    hits = text_in_other_panels(fig, text_boxes(fig))
    assert [(b.what, j) for b, j in hits] == [("panel 2 y label 'a y label placed in the gap'", 0)]
    ax1.set_xticks(np.arange(0.0, 1.01, 0.05))  # 21 labels on 2.6 inches: they collide
    pairs = overlapping_text(text_boxes(fig))
    assert pairs and all("x tick label" in a.what and "x tick label" in b.what
                         for a, b in pairs)
    fig.subplots_adjust(wspace=0.4)
    ax1.set_xticks([0.0, 0.5, 1.0])
    ax2.tick_params(labelleft=True)
    assert layout_problems(fig) == []
    plt.close(fig)


def test_a_log_axis_must_be_labelled_where_the_data_are() -> None:
    fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
    ax.plot([1, 2, 3], [3.5, 6.0, 12.0], "o")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks([0.8, 1.0, 1.5, 2.0, 3.0])  # the batchnorm axis: labels below data
    found = unreadable_log_axes(fig)
    assert len(found) == 1 and "panel 1: the log y axis" in found[0]
    ax.set_yticks([2.0, 4.0, 8.0, 16.0])
    assert unreadable_log_axes(fig) == []
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
    ax.loglog([1, 10, 100, 800], [1, 2, 3, 4], "o")  # matplotlib's own labels: readable
    assert unreadable_log_axes(fig) == []
    ax.xaxis.set_major_formatter(NullFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    assert unreadable_log_axes(fig) == [
        f"panel 1: the log x axis has 0 labelled tick(s) between "
        f"{ax.get_xlim()[0]:.3g} and {ax.get_xlim()[1]:.3g}"]
    plt.close(fig)


def test_figure_png_logs_each_problem_and_still_renders(caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_title("clean")
    with caplog.at_level(logging.WARNING, logger="dropkit.report"):
        png = figure_png(fig, dpi=50)
    assert png.startswith(b"\x89PNG") and caplog.records == []
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_title("crowded")
    ax.set_xticks(np.arange(0.0, 1.01, 0.05))
    expected = layout_problems(fig)
    with caplog.at_level(logging.WARNING, logger="dropkit.report"):
        png = figure_png(fig, dpi=50)
    assert png.startswith(b"\x89PNG") and len(expected) > 0
    assert [r.getMessage() for r in caplog.records] == [f"figure 'crowded': {p}"
                                                        for p in expected]
    assert not plt.get_fignums()  # closed
