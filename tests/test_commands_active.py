"""`dropkit active --quick` end to end, and the verdict rule on hand-made summaries."""

from __future__ import annotations

import json

import pytest

from dropkit.active.report import judge_labels
from dropkit.cli import main


def _summary(**labels: int | None) -> dict:
    return {a: {"labels_to_target": n} for a, n in labels.items()}


@pytest.mark.parametrize("labels,verdict,ratios", [
    (dict(bald=100, variation_ratio=110, random=200), "supported", (0.5, 0.55)),
    (dict(bald=100, variation_ratio=190, random=200), "partly supported", (0.5, 0.95)),
    (dict(bald=150, variation_ratio=None, random=None), "not supported", (0.75, 1.0)),
    (dict(bald=None, random=None), "not supported", (1.0,)),
])
def test_verdict_rule(labels, verdict, ratios) -> None:
    got, criterion, r = judge_labels(_summary(**labels), budget_end=200)
    assert got == verdict and "<= 0.6" in criterion
    assert tuple(r.values()) == pytest.approx(ratios)


def test_quick_run_writes_consistent_results_and_a_page(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("TQDM_DISABLE", "1")
    rc = main(["active", "--quick", "--acquisitions", "bald,random", "--out", str(tmp_path)])
    assert rc == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    exp = doc["experiment"]
    assert [r["acquisition"] for r in exp["runs"]] == ["bald", "random"]
    for run in exp["runs"]:
        rounds = run["rounds"]
        assert [r["labelled"] for r in rounds] == [20, 30, 40]
        assert len(set(run["labelled"])) == 40 and all(0 <= i < exp["pool"]
                                                         for i in run["labelled"])
        summary = exp["summary"][run["acquisition"]]
        assert summary["accuracy_mean"] == [r["accuracy"] for r in rounds]  # one seed
        reach = [r["labelled"] for r in rounds if r["accuracy"] >= 0.9]
        assert summary["labels_to_target"] == (reach[0] if reach else None)
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in page and "Active learning on digits" in page
    assert doc["claims"][0]["verdict"] in capsys.readouterr().out
