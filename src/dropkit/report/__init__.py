"""Reports: the lab's self-contained HTML page."""

from dropkit.report.html import render_html

__all__ = ["render_html"]
