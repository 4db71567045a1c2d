"""The lab report as one self-contained HTML page.

Figures are embedded as base64 PNG data URIs and the CSS is inline, so the page needs no
network and no other file. Every piece of text is escaped. A small inline script checks, once
the page has loaded, that every image decoded and every summary link has its section; it
writes the outcome into ``#dropkit-check`` (``data-status="ok"`` or ``"broken"``) and shows a
warning if anything is broken.

A smoke test (``dropkit lab --quick``) cannot be mistaken for evidence: the page opens with a
banner (``#smoke-test``), its title says so, and its verdicts are shown without colours.
Each claim lists its statements (each with its criterion, then the conditions with their
measured values, then its numbers); values measured once per seed are in a table with a column
per seed (`dropkit.report.tables`).
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from dropkit.report.figure import Figure
from dropkit.report.tables import mean, split_numbers

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
#smoke-test { background: #fff4c2; border: 2px solid #b7950b; padding: .8em 1em;
              font-size: 1.1em; margin: 1em 0; }
.v-smoke { background: #eee; color: #333; font-weight: 400; }
tr.statement td:first-child { padding-left: 2em; } .disagreement { font-weight: 600; }
.statement { margin: 1em 0 1.4em; padding-left: .8em; border-left: 2px solid #ddd; }
"""

#: What the banner of a smoke test says (also its terminal line, see `commands/lab.py`).
SMOKE_TEST_TEXT = ("Smoke test (dropkit lab --quick): tiny sizes and few steps, to check that "
                   "everything runs. These verdicts are not evidence about dropout; run "
                   "without --quick for that.")

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
  // a smoke test's banner must be on screen, above the summary table
  var banner = document.getElementById("smoke-test");
  var summary = document.querySelector("table.summary");
  box.setAttribute("data-smoke-banner", !banner ? "absent" :
    (banner.offsetHeight > 0 && banner.offsetWidth > 0 &&
     (!summary || banner.getBoundingClientRect().bottom <= summary.getBoundingClientRect().top))
    ? "visible" : "hidden");
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


def is_smoke_test(document: Mapping[str, Any]) -> bool:
    """Whether ``document`` (``results.json``) comes from a quick run: its top-level
    ``smoke_test`` field, or for older files ``lab_config.quick``."""
    if "smoke_test" in document:
        return bool(document["smoke_test"])
    return bool(document.get("lab_config", {}).get("quick", False))


def _verdict(verdict: str, smoke: bool = False) -> str:
    # a smoke test's verdicts get one neutral style: no green or red to read as a result
    cls = "v-smoke" if smoke else "v-" + re.sub(r"[^a-z]+", "-", verdict.lower()).strip("-")
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


def _figure(fig: Figure) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(fig.caption)}" '
            f'data-name="{_e(fig.name)}"><figcaption>{_e(fig.caption)}</figcaption></figure>')


def _collapsible(table: str, n_rows: int, what: str) -> str:
    if n_rows > COLLAPSE_ROWS:
        return f"<details><summary>{what}: {n_rows} rows</summary>{table}</details>"
    return table


def _numbers_table(rows: Sequence[tuple[str, Any]]) -> str:
    shown = rows[:MAX_ROWS]
    body = "".join(f'<tr><td>{_e(k)}</td><td class="num">{_e(format_value(v))}</td></tr>'
                   for k, v in shown)
    more = (f"<p>{len(rows) - MAX_ROWS} more rows in results.json.</p>"
            if len(rows) > MAX_ROWS else "")
    table = f"<table class='numbers'><tr><th>quantity</th><th>value</th></tr>{body}</table>{more}"
    return _collapsible(table, len(rows), "All numbers")


def _per_seed_table(rows: Sequence[tuple[str, list[float]]], seeds: Sequence[Any],
                    level: int = 3) -> str:
    """One row per quantity, one column per seed, and the mean over seeds."""
    if not rows:
        return ""
    head = "".join(f"<th>seed {_e(s)}</th>" for s in seeds)
    body = "".join(
        f"<tr><td>{_e(k)}</td>"
        + "".join(f'<td class="num">{_e(format_value(v))}</td>' for v in values)
        + f'<td class="num">{_e(format_value(mean(values)))}</td></tr>'
        for k, values in rows[:MAX_ROWS])
    table = (f"<table class='per-seed'><tr><th>quantity</th>{head}<th>mean</th></tr>{body}"
             "</table>")
    return f"<h{level}>Per seed</h{level}>" + _collapsible(table, len(rows), "Values per seed")


def _numbers(numbers: Mapping[str, Any], seeds: Sequence[Any], title: str = "Numbers",
             level: int = 3) -> str:
    per_seed, other = split_numbers(numbers, len(seeds))
    return (_per_seed_table(per_seed, seeds, level)
            + (f"<h{level}>{_e(title)}</h{level}>{_numbers_table(other)}" if other else ""))


def disagreement(statements: Sequence[Mapping[str, Any]]) -> str:
    """One sentence naming the statements whose verdicts differ ("" when they agree)."""
    by_verdict: dict[str, list[str]] = {}
    for st in statements:
        by_verdict.setdefault(str(st.get("verdict")), []).append(str(st.get("id")))
    if len(by_verdict) < 2:
        return ""
    parts = [f"{v}: {', '.join(ids)}" for v, ids in by_verdict.items()]
    return "The statements disagree (" + "; ".join(parts) + ")."


def statement_anchor(statement_id: str) -> str:
    """The element id of a statement's block."""
    return "statement-" + re.sub(r"[^A-Za-z0-9-]+", "-", statement_id)


def _conditions(conditions: Sequence[Mapping[str, Any]]) -> str:
    if not conditions:
        return ""
    rows = "".join(
        f"<tr><td>{_e(c.get('rule', ''))}</td><td>{_e(c.get('measured', ''))}</td>"
        f"<td>{'yes' if c.get('holds') else 'no'}</td></tr>" for c in conditions)
    return ("<table class='conditions'><tr><th>condition</th><th>measured</th><th>holds</th>"
            f"</tr>{rows}</table>")


def _statement(st: Mapping[str, Any], seeds: Sequence[Any], smoke: bool) -> str:
    """A statement: its criterion first, then its conditions with the measured values, then
    its numbers."""
    kind = st.get("kind", "measured")
    return (f'<div class="statement" id="{statement_anchor(str(st["id"]))}" '
            f'data-verdict="{_e(st["verdict"])}"><h4>{_e(st["id"])}: {_e(st["text"])} '
            f'{_verdict(st["verdict"], smoke)}</h4>'
            f'<p class="criterion"><strong>Criterion.</strong> {_e(st.get("criterion", ""))}'
            + (" (read from configurations or documentation, not measured)"
               if kind == "descriptive" else "") + "</p>"
            + _conditions(st.get("conditions", []))
            + _numbers(st.get("numbers", {}), seeds, "Other numbers", level=5) + "</div>")


def _statements(statements: Sequence[Mapping[str, Any]], seeds: Sequence[Any],
                smoke: bool) -> str:
    if not statements:
        return ""
    note = disagreement(statements)
    return ("<h3>Statements</h3>"
            + (f'<p class="disagreement">{_e(note)}</p>' if note else "")
            + "".join(_statement(st, seeds, smoke) for st in statements))


def _section(record: Mapping[str, Any], figures: Sequence[Figure], smoke: bool) -> str:
    caveats = "".join(f"<li>{_e(c)}</li>" for c in record.get("caveats", []))
    config = ", ".join(f"{k} = {format_value(v)}" for k, v in record.get("config", {}).items())
    seeds = list(record.get("seeds", []))
    return (
        f'<section id="{anchor(record["id"])}"><h2>{_e(record["title"])} '
        f'{_verdict(record["verdict"], smoke)}</h2>'
        f'<p><strong>Claim.</strong> {_e(record["claim"])}</p>'
        f'<p><strong>Setup.</strong> {_e(record["setup"])}</p>'
        + "".join(_figure(f) for f in figures)
        + f'<h3>Verdict: {_verdict(record["verdict"], smoke)}</h3>'
        f'<p class="criterion"><strong>Criterion.</strong> {_e(record["criterion"])}</p>'
        + _statements(record.get("statements", []), seeds, smoke)
        + f'<p><strong>Key number.</strong> {_e(record["key_number"])}</p>'
        + _numbers(record.get("numbers", {}), seeds)
        + (f"<h3>Caveats</h3><ul>{caveats}</ul>" if caveats else "")
        + f'<p class="meta">Seeds {_e(seeds)}; '
        f'{float(record.get("seconds", 0.0)):.1f} s; config: {_e(config)}</p></section>')


def _failed_section(failure: Mapping[str, Any]) -> str:
    return (f'<section id="{anchor(failure["id"])}"><h2>{_e(failure["id"])} '
            f'{_verdict("failed")}</h2><p>This claim raised an error after '
            f'{float(failure.get("seconds", 0.0)):.1f} s, so it has no verdict.</p>'
            f'<pre>{_e(failure.get("traceback") or failure["error"])}</pre></section>')


def _summary(document: Mapping[str, Any], smoke: bool) -> str:
    """Claim / verdict / key number, with each claim's statements (id, verdict, text) in
    rows under it."""
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
        rows.append(f'<tr class="claim"><td><a href="#{anchor(claim_id)}">{_e(title)}</a></td>'
                    f"<td>{_verdict(verdict, smoke and kind == 'ok')}</td><td>{_e(key)}</td>"
                    "</tr>")
        for st in rec.get("statements", []) if kind == "ok" else []:
            rows.append(f'<tr class="statement" data-statement="{_e(st["id"])}"><td>'
                        f'<a href="#{statement_anchor(str(st["id"]))}">{_e(st["id"])}</a></td>'
                        f'<td>{_verdict(st["verdict"], smoke)}</td><td>{_e(st["text"])}</td>'
                        "</tr>")
    verdict_head = "verdict (smoke test: not evidence)" if smoke else "verdict"
    return (f"<table class='summary'><tr><th>claim / statement</th><th>{verdict_head}</th>"
            "<th>key number / statement</th></tr>" + "".join(rows) + "</table>")


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
    smoke = is_smoke_test(document)
    by_id: dict[str, str] = {}
    for record in document.get("claims", []):
        by_id[record["id"]] = _section(record, figures.get(record["id"], []), smoke)
    for failure in document.get("failed", []):
        by_id[failure["id"]] = _failed_section(failure)
    order = [c for c in document.get("order") or list(by_id) if c in by_id]
    n_failed = len(document.get("failed", []))
    status = (f"{len(document.get('claims', []))} claims measured"
              + (f", {n_failed} failed" if n_failed else ""))
    title = "dropkit lab: what dropout really does"
    banner = ""
    if smoke:
        title = "SMOKE TEST - " + title
        banner = f'<div id="smoke-test" role="alert">{_e(SMOKE_TEST_TEXT)}</div>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>"
        f'<body data-run-kind="{"smoke test" if smoke else "full"}">'
        "<h1>dropkit lab: common claims about dropout, measured</h1>" + banner
        + f"<p>{_e(status)}; each verdict is computed from the numbers by the criterion "
        "shown in its section.</p>"
        '<div id="dropkit-check" data-status="pending"></div>'
        f"{_summary(document, smoke)}" + "".join(by_id[c] for c in order) + _footer(document)
        + f"<script>{CHECK_SCRIPT}</script></body></html>\n")
