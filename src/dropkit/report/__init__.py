"""Reports, at the edge of the package (nothing here imports the lab or the experiments):
figures and their layout check, numbers in prose, tables, and the self-contained HTML page."""

from dropkit.report.figure import Figure, figure_png
from dropkit.report.html import is_smoke_test, render_html
from dropkit.report.layout import layout_problems
from dropkit.report.numbers import direction, magnitude, signed

__all__ = ["Figure", "direction", "figure_png", "is_smoke_test", "layout_problems",
           "magnitude", "render_html", "signed"]
