"""The lab report as one self-contained HTML page.

Figures are embedded as base64 PNG data URIs and the CSS is inline, so the page needs no
network and no other file. Every piece of text is escaped. A small inline script checks, once
the page has loaded, that every image decoded and every summary link has its section; it
writes the outcome into ``#dropkit-check`` (``data-status="ok"`` or ``"broken"``) and shows a
warning if anything is broken.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from dropkit.lab.base import Figure

#: Numbers tables longer than this start collapsed.
COLLAPSE_ROWS = 24
#: Lists longer than this are summarised in the table (every value is in results.json).
MAX_LIST = 12
#: At most this many rows per numbers table.
MAX_ROWS = 400

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.7em; margin-bottom: .2em; } h2 { margin-top: 2.2em; border-bottom: 1px solid
#ddd; padding-bottom: .2em; } table { border-collapse: collapse; margin: .6em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f6; } td.num { font-variant-numeric: tabular-nums; }
.verdict { font-weight: 600; padding: .1em .5em; border-radius: .3em; white-space: nowrap; }
.v-supported { background: #d7f0dc; color: #14532d; }
.v-partly-supported { background: #fdf0c8; color: #713f12; }
.v-not-supported { background: #fbdada; color: #7f1d1d; }
.v-failed { background: #444; color: #fff; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .92em; } pre { background: #f6f6f6; padding: .8em;
overflow-x: auto; font-size: .85em; } .criterion { background: #f7f7fb; padding: .6em .8em;
border-left: 4px solid #99a; } footer { margin-top: 3em; color: #555; font-size: .9em; }
#dropkit-check[data-status="broken"] { display: block; background: #fbdada; padding: .6em; }
#dropkit-check { display: none; }
"""

# Runs after load: are all images decoded, and does every in-page link have its target?
CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (im) { return !(im.complete && im.naturalWidth > 0); });
  var links = Array.prototype.slice.call(document.querySelectorAll('a[href^="#"]'));
  var dangling = links.filter(function (a) {
    return !document.getElementById(decodeURIComponent(a.getAttribute("href").slice(1)));
  });
  var box = document.getElementById("dropkit-check");
  box.setAttribute("data-images", String(images.length));
  box.setAttribute("data-broken-images", String(broken.length));
  box.setAttribute("data-dangling-links", String(dangling.length));
  var ok = broken.length === 0 && dangling.length === 0;
  box.setAttribute("data-status", ok ? "ok" : "broken");
  if (!ok) {
    box.textContent = broken.length + " figure(s) failed to load and " + dangling.length +
      " link(s) point nowhere.";
  }
});
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def anchor(claim_id: str) -> str:
    """The section id of a claim (letters, digits and dashes only)."""
    return "claim-" + re.sub(r"[^A-Za-z0-9-]+", "-", claim_id)


def _verdict(verdict: str) -> str:
    cls = "v-" + re.sub(r"[^a-z]+", "-", verdict.lower()).strip("-")
    return f'<span class="verdict {cls}">{_e(verdict)}</span>'


def format_value(value: Any) -> str:
    """A number to 4 significant digits, a short list inline, anything else as text."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    if isinstance(value, list):
        if len(value) > MAX_LIST or any(isinstance(v, (list, dict)) for v in value):
            return f"[{len(value)} values; see results.json]"
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def flatten(numbers: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Leaves of a nested dict as ``("a / b / c", value)`` rows, in insertion order."""
    rows: list[tuple[str, Any]] = []
    for key, value in numbers.items():
        path = f"{prefix} / {key}" if prefix else str(key)
        if isinstance(value, Mapping):
            rows.extend(flatten(value, path))
        else:
            rows.append((path, value))
    return rows


def _figure(fig: Figure) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(fig.caption)}" '
            f'data-name="{_e(fig.name)}"><figcaption>{_e(fig.caption)}</figcaption></figure>')


def _numbers_table(numbers: Mapping[str, Any]) -> str:
    rows = flatten(numbers)
    shown = rows[:MAX_ROWS]
    body = "".join(f'<tr><td>{_e(k)}</td><td class="num">{_e(format_value(v))}</td></tr>'
                   for k, v in shown)
    more = (f"<p>{len(rows) - MAX_ROWS} more rows in results.json.</p>"
            if len(rows) > MAX_ROWS else "")
    table = f"<table><tr><th>quantity</th><th>value</th></tr>{body}</table>{more}"
    if len(rows) > COLLAPSE_ROWS:
        return f"<details><summary>All {len(rows)} numbers</summary>{table}</details>"
    return table


def _section(record: Mapping[str, Any], figures: Sequence[Figure]) -> str:
    caveats = "".join(f"<li>{_e(c)}</li>" for c in record.get("caveats", []))
    config = ", ".join(f"{k} = {format_value(v)}" for k, v in record.get("config", {}).items())
    return (
        f'<section id="{anchor(record["id"])}"><h2>{_e(record["title"])} '
        f'{_verdict(record["verdict"])}</h2>'
        f'<p><strong>Claim.</strong> {_e(record["claim"])}</p>'
        f'<p><strong>Setup.</strong> {_e(record["setup"])}</p>'
        + "".join(_figure(f) for f in figures)
        + f'<h3>Verdict: {_verdict(record["verdict"])}</h3>'
        f'<p class="criterion"><strong>Criterion.</strong> {_e(record["criterion"])}</p>'
        f'<p><strong>Key number.</strong> {_e(record["key_number"])}</p>'
        f"<h3>Numbers</h3>{_numbers_table(record.get('numbers', {}))}"
        + (f"<h3>Caveats</h3><ul>{caveats}</ul>" if caveats else "")
        + f'<p class="meta">Seeds {_e(record.get("seeds", []))}; '
        f'{float(record.get("seconds", 0.0)):.1f} s; config: {_e(config)}</p></section>')


def _failed_section(failure: Mapping[str, Any]) -> str:
    return (f'<section id="{anchor(failure["id"])}"><h2>{_e(failure["id"])} '
            f'{_verdict("failed")}</h2><p>This claim raised an error after '
            f'{float(failure.get("seconds", 0.0)):.1f} s, so it has no verdict.</p>'
            f'<pre>{_e(failure.get("traceback") or failure["error"])}</pre></section>')


def _summary(document: Mapping[str, Any]) -> str:
    by_id = {r["id"]: ("ok", r) for r in document.get("claims", [])}
    by_id |= {f["id"]: ("failed", f) for f in document.get("failed", [])}
    order = document.get("order") or list(by_id)
    rows = []
    for claim_id in order:
        if claim_id not in by_id:
            continue
        kind, rec = by_id[claim_id]
        title = rec["title"] if kind == "ok" else claim_id
        verdict = rec["verdict"] if kind == "ok" else "failed"
        key = rec["key_number"] if kind == "ok" else rec["error"]
        rows.append(f'<tr><td><a href="#{anchor(claim_id)}">{_e(title)}</a></td>'
                    f"<td>{_verdict(verdict)}</td><td>{_e(key)}</td></tr>")
    return ("<table class='summary'><tr><th>claim</th><th>verdict</th><th>key number</th></tr>"
            + "".join(rows) + "</table>")


def _footer(document: Mapping[str, Any]) -> str:
    def kv(d: Mapping[str, Any]) -> str:
        return ", ".join(f"{k} {v}" for k, v in d.items())

    cfg = document.get("lab_config", {})
    return (f"<footer><p><strong>Versions.</strong> {_e(kv(document.get('versions', {})))}</p>"
            f"<p><strong>Hardware.</strong> {_e(kv(document.get('hardware', {})))}</p>"
            f"<p><strong>Lab config.</strong> {_e(kv(cfg))}</p>"
            f"<p><strong>Command.</strong> <code>{_e(document.get('command', ''))}</code>; "
            f"started {_e(document.get('started_utc', ''))}; wall time "
            f"{float(document.get('wall_seconds', 0.0)):.1f} s. Every number is in "
            f"results.json next to this page.</p></footer>")


def render_html(document: Mapping[str, Any],
                figures: Mapping[str, Sequence[Figure]] | None = None) -> str:
    """The report page for a lab ``document`` (the content of ``results.json``) and the
    figures of each claim id."""
    figures = figures or {}
    by_id: dict[str, str] = {}
    for record in document.get("claims", []):
        by_id[record["id"]] = _section(record, figures.get(record["id"], []))
    for failure in document.get("failed", []):
        by_id[failure["id"]] = _failed_section(failure)
    order = [c for c in document.get("order") or list(by_id) if c in by_id]
    n_failed = len(document.get("failed", []))
    status = (f"{len(document.get('claims', []))} claims measured"
              + (f", {n_failed} failed" if n_failed else ""))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>dropkit lab: what dropout really does</title><style>{CSS}</style></head>"
        "<body><h1>dropkit lab: common claims about dropout, measured</h1>"
        f"<p>{_e(status)}; each verdict is computed from the numbers by the criterion "
        "shown in its section.</p>"
        '<div id="dropkit-check" data-status="pending"></div>'
        f"{_summary(document)}" + "".join(by_id[c] for c in order) + _footer(document)
        + f"<script>{CHECK_SCRIPT}</script></body></html>\n")
