"""`dropkit lab` output: --out problems, an --out holding a report (without --force) and
`--claims ''` fail before any claim runs; the two files are one set (a failure while writing
leaves the old pair); the terminal summary names the CPU and says when it is a smoke test."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dropkit.cli import main
from dropkit.errors import DropkitValueError
from dropkit.lab import LabConfig, run_lab
from tests import lab_fake_claims


@pytest.fixture()
def fake_claims() -> Iterator[None]:
    from dropkit.lab import runner

    saved = dict(runner.CLAIMS)
    lab_fake_claims.install("new")
    yield
    runner.CLAIMS.clear()
    runner.CLAIMS.update(saved)
    for name in [m for m in sys.modules if m.split(".")[0] == "fake_claims"]:
        del sys.modules[name]


def _lab(out: Path, *extra: str) -> int:
    return main(["lab", "--out", str(out), "--seeds", "0", "--workers", "1", "--no-progress",
                 *extra])


def test_empty_claims_is_an_error_not_all_claims(tmp_path: Path, fake_claims: None,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert _lab(tmp_path / "out", "--claims", "") == 2
    err = capsys.readouterr().err
    assert "Expected argument `--claims`" in err and "ran" not in err
    assert not (tmp_path / "out").exists()


def test_an_out_that_cannot_take_the_results_fails_before_any_claim(
        tmp_path: Path, fake_claims: None, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for out, words in ((a_file, "a folder (or a path to create one)"),
                       (a_file / "sub", "a writable folder"),
                       (Path("/sys"), "a writable folder")):  # /sys: read-only even for root
        assert _lab(out) == 2
        err = capsys.readouterr().err
        assert f"Expected argument `--out` to be {words}, but got '{out}'" in err, err
        assert "claim fake-a ran" not in err and "Traceback" not in err
    with pytest.raises(DropkitValueError, match="Expected argument `out` to be a folder"):
        run_lab(LabConfig(progress=False), out=a_file)


def test_a_failure_while_writing_leaves_the_old_pair(
        tmp_path: Path, fake_claims: None, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    assert _lab(out) == 0
    old = {name: (out / name).read_bytes() for name in ("results.json", "index.html")}
    assert json.loads(old["results.json"])["claims"][0]["key_number"] == "run new"
    assert b"run new" in old["index.html"]

    def broken(*args: object) -> str:
        raise RuntimeError("the page could not be drawn")

    monkeypatch.setattr("dropkit.report.html.render_html", broken)
    lab_fake_claims.install("newer")
    with pytest.raises(RuntimeError, match="could not be drawn"):
        _lab(out, "--force")
    assert {name: (out / name).read_bytes() for name in old} == old  # not a new json
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "results.json"]


def test_an_out_holding_a_report_is_refused_unless_force(
        tmp_path: Path, fake_claims: None, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _lab(out) == 0
    old = {name: (out / name).read_bytes() for name in ("results.json", "index.html")}
    started = json.loads(old["results.json"])["started_utc"]
    capsys.readouterr()
    lab_fake_claims.install("second")
    assert _lab(out) == 2
    err = capsys.readouterr().err
    assert (f"Expected argument `--out` to be a folder without a report (pass --force to "
            f"replace it, or choose another --out), but got '{out}', which holds results.json "
            f"and index.html from a run started {started}.") in err, err
    assert "claim fake-a ran" not in err  # refused before any work
    assert {name: (out / name).read_bytes() for name in old} == old
    # one file of a report is enough to refuse; an empty folder is not a report
    (out / "results.json").unlink()
    assert _lab(out) == 2 and "which holds index.html." in capsys.readouterr().err
    (out / "index.html").unlink()
    assert _lab(out) == 0
    assert json.loads((out / "results.json").read_text())["claims"][0]["key_number"] == \
        "run second"
    lab_fake_claims.install("third")
    assert _lab(out, "--force") == 0
    assert json.loads((out / "results.json").read_text())["claims"][0]["key_number"] == \
        "run third"


def test_summary_names_the_cpu_and_marks_a_smoke_test(
        tmp_path: Path, fake_claims: None, capsys: pytest.CaptureFixture[str]) -> None:
    from dropkit.experiments.record import environment
    from dropkit.report.html import SMOKE_TEST_TEXT

    cpu = environment()["hardware"]["cpu"]
    assert _lab(tmp_path / "full") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert f"Machine: {cpu}, " in out
    assert lines[0].startswith("claim ") and SMOKE_TEST_TEXT not in out
    assert _lab(tmp_path / "quick", "--quick") == 0
    lines = capsys.readouterr().out.splitlines()
    banner = f"*** {SMOKE_TEST_TEXT} ***"
    table_end = next(i for i, line in enumerate(lines) if line.startswith("fake-b"))
    assert lines[0] == banner and lines[table_end + 1] == banner
    assert "smoke test" in banner.lower()
    doc = json.loads((tmp_path / "quick" / "results.json").read_text())
    assert doc["hardware"]["cpu"] == cpu


def test_results_json_says_smoke_test_at_the_top(tmp_path: Path, fake_claims: None) -> None:
    from dropkit.report.html import is_smoke_test

    for flags, quick in (((), False), (("--quick",), True)):
        out = tmp_path / ("quick" if quick else "full")
        assert _lab(out, *flags) == 0
        doc = json.loads((out / "results.json").read_text())
        assert doc["smoke_test"] is quick and is_smoke_test(doc) is quick
        page = (out / "index.html").read_text()
        assert ('<div id="smoke-test" role="alert">' in page) is quick


def test_claims_flag_takes_groups_and_statement_ids() -> None:
    from dropkit.commands.lab import _ids
    from dropkit.errors import DropkitValueError
    from dropkit.lab.runner import CLAIMS, STATEMENTS, select_claims

    # each statement id selects exactly the claim that judges it
    for sid, claim in STATEMENTS.items():
        assert select_claims(_ids(sid)) == [claim]
    # a group and a claim id together: the claims in registry order, once each
    both = select_claims(_ids(f"bn,{STATEMENTS['bn.recipe']},scale.slow"))
    assert both == [c for c in CLAIMS if c in {STATEMENTS["bn.recipe"], STATEMENTS["scale.slow"]}]
    with pytest.raises(DropkitValueError, match="--claims"):
        _ids("bn.nosuch")
