"""The lab's HTML page: content, escaping, self-containment, and a real-browser check that every
figure loads (headless Chromium; `.ci/run` installs Debian's `chromium`)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from dropkit.lab import LabConfig, run_lab
from dropkit.lab.base import ClaimResult, Figure, figure_png
from dropkit.report.html import anchor, format_value, render_html
from dropkit.report.tables import flatten


def _png(title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [1, 0, 1])
    ax.set_title(title)
    return figure_png(fig, dpi=60)


def _document() -> tuple[dict, dict[str, list[Figure]]]:
    record = {
        "id": "transformer-placement", "title": "Placement <b>bold</b>",
        "claim": "Dropout & friends", "setup": "a 'setup' \"quoted\"", "verdict": "supported",
        "criterion": "mean - 2se > 0.01", "key_number": "Δ = 0.05 <script>alert(1)</script>",
        "numbers": {"a": {"b": 0.123456789, "c": [1, 2, 3]}, "long": list(range(50)),
                    "flag": True, "none": None},
        "caveats": ["tiny <model>"], "config": {"steps": 10}, "seeds": [0, 1], "seconds": 1.5,
        "figures": [{"name": "f1", "caption": "c1"}, {"name": "f2", "caption": "c2"}]}
    other = dict(record, id="scale", title="Scale", verdict="not supported", numbers={"x": 1.0})
    doc = {"claims": [record, other],
           "failed": [{"id": "bayesian", "error": "RuntimeError: <oops>",
                       "traceback": "Traceback ...\nRuntimeError: <oops>", "seconds": 0.2}],
           "order": ["bayesian", "transformer-placement", "scale"],
           "lab_config": {"quick": True, "seeds": [0, 1], "threads": 2, "progress": False},
           "command": "dropkit lab --quick", "started_utc": "2026-01-01T00:00:00+00:00",
           "wall_seconds": 12.5, "versions": {"python": "3.11", "torch": "2.x"},
           "hardware": {"cpu": "Some CPU", "cores": 2, "threads": 2}}
    figs = {"transformer-placement": [Figure("f1", _png("one"), "caption <one>"),
                                      Figure("f2", _png("two"), "caption two")],
            "scale": [Figure("f3", _png("three"), "caption three")]}
    return doc, figs


def test_page_content_escaping_and_order() -> None:
    doc, figs = _document()
    page = render_html(doc, figs)
    assert page.startswith("<!DOCTYPE html>")
    # Every text is escaped: no injected markup survives.
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Placement &lt;b&gt;bold&lt;/b&gt;" in page and "tiny &lt;model&gt;" in page
    assert "RuntimeError: &lt;oops&gt;" in page
    # Summary table in the document's order, each row linking to its section.
    links = re.findall(r'<a href="#([^"]+)">', page)
    assert links == [anchor(c) for c in doc["order"]]
    for claim_id in doc["order"]:
        assert f'<section id="{anchor(claim_id)}">' in page
    assert page.index(anchor("bayesian") + '">') < page.index(anchor("scale") + '">')
    # Figures embedded as PNG data URIs, byte for byte.
    srcs = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert [base64.b64decode(s) for s in srcs] == [f.png for k in ("transformer-placement",
                                                                   "scale") for f in figs[k]]
    # Self-contained: no external resource.
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    assert "http://" not in page and "https://" not in page
    for text in ("mean - 2se &gt; 0.01", "Dropout &amp; friends", "Some CPU", "12.5 s",
                 "dropkit lab --quick", "a / b", "0.1235", "[1, 2, 3]", "[50 values"):
        assert text in page, text


def test_helpers() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == [("a / b", 1), ("a / c / d", 2),
                                                                ("e", 3)]
    assert format_value(1 / 3) == "0.3333" and format_value(float("nan")) == "nan"
    assert format_value([0.5, 2]) == "[0.5, 2]" and format_value([[1]]).startswith("[1 values")
    assert anchor("a b/c") == "claim-a-b-c"


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but no chromium on PATH: `.ci/run` must install Debian's chromium "
                    "(apt-get install -y chromium)")
    pytest.skip("headless Chromium is not installed (apt-get install -y chromium); "
                "in CI (CI=true) this test fails instead of skipping")


def _browser_check(page: Path, tmp_path: Path) -> dict[str, str]:
    """Load ``page`` in headless Chromium and return the attributes of ``#dropkit-check``."""
    cmd = [_chromium(), "--headless", "--disable-gpu", "--no-sandbox",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chrome-profile'}",
           "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = re.search(r'<div id="dropkit-check"([^>]*)>', proc.stdout)
    assert match, f"no #dropkit-check in the DOM Chromium dumped: {proc.stdout[:500]!r}"
    return dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', match.group(1)))


@pytest.fixture(scope="module")
def lab_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A page written by the runner: two measured claims with figures and one failed claim."""
    png = _png("runner")
    out = tmp_path_factory.mktemp("lab")
    ok = types.ModuleType("fake_report.ok")
    ok.run = lambda cfg: ClaimResult(  # type: ignore[attr-defined]
        id="ok", title="OK claim", claim="c", setup="s", verdict="partly supported",
        criterion="rule", key_number="1.0", numbers={"x": 1.0},
        figures=[Figure("a", png, "first"), Figure("b", png, "second")])
    boom = types.ModuleType("fake_report.boom")

    def fail(cfg: LabConfig) -> ClaimResult:
        raise ValueError("broken <claim>")

    boom.run = fail  # type: ignore[attr-defined]
    mods = {"fake_report": types.ModuleType("fake_report"), "fake_report.ok": ok,
            "fake_report.boom": boom}
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        run = run_lab(LabConfig(progress=False, threads=1), out=out,
                      registry={"ok": "fake_report.ok", "boom": "fake_report.boom"})
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    assert [f.id for f in run.failed] == ["boom"]
    return run.html_path


def test_browser_renders_every_figure(lab_page: Path, tmp_path: Path) -> None:
    attrs = _browser_check(lab_page, tmp_path)
    assert attrs["data-status"] == "ok", attrs
    assert attrs["data-images"] == "2" and attrs["data-broken-images"] == "0"
    assert attrs["data-dangling-links"] == "0"


def test_browser_shows_the_smoke_test_banner(lab_page: Path, tmp_path: Path) -> None:
    """The runner's page of a full run has no banner; the same document marked as a smoke
    test shows it, on screen and above the summary table; a banner hidden by CSS is caught."""
    assert _browser_check(lab_page, tmp_path)["data-smoke-banner"] == "absent"
    doc = json.loads((lab_page.parent / "results.json").read_text())
    doc["smoke_test"] = True
    quick = tmp_path / "quick.html"
    quick.write_text(render_html(doc, {}))
    assert _browser_check(quick, tmp_path)["data-smoke-banner"] == "visible"
    hidden = tmp_path / "hidden.html"
    hidden.write_text(quick.read_text().replace("</style>", "#smoke-test{display:none}</style>"))
    assert _browser_check(hidden, tmp_path)["data-smoke-banner"] == "hidden"


def test_browser_check_detects_broken_figures_and_links(lab_page: Path, tmp_path: Path) -> None:
    page = lab_page.read_text()
    broken = page.replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1)
    broken = broken.replace('<a href="#claim-ok">', '<a href="#claim-missing">', 1)
    bad = tmp_path / "broken.html"
    bad.write_text(broken)
    attrs = _browser_check(bad, tmp_path)
    assert attrs["data-status"] == "broken"
    assert attrs["data-broken-images"] == "1" and attrs["data-dangling-links"] == "1"


def test_missing_chromium_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but no chromium"):
        _chromium()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        _chromium()
