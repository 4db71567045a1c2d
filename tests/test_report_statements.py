"""The report's page for a smoke test (banner, field, no verdict colours), claims with
statements (summary rows, criterion before conditions and numbers, disagreement), and the
per-seed table (values and means checked against the document)."""

from __future__ import annotations

import dataclasses
import html
import re
from typing import Any

from dropkit.experiments.claim import Condition, Statement, group_verdict
from dropkit.report.html import (
    SMOKE_TEST_TEXT,
    is_smoke_test,
    render_html,
    statement_anchor,
)
from dropkit.report.tables import per_seed_rows, split_numbers


def _statement(sid: str, verdict: str, holds: bool, value: float) -> dict[str, Any]:
    st = Statement(id=sid, group="fake", text=f"text of {sid}", verdict=verdict,
                   criterion=f"supported if gain of {sid} > 0.5 pp",
                   conditions=[Condition(rule="gain > 0.5 pp", measured=f"{value} pp",
                                         holds=holds)],
                   numbers={"gain_pp": [value, value + 1.0, value + 2.0]})
    return dataclasses.asdict(st)  # what results.json holds


def _claim(cid: str, statements: list[dict[str, Any]]) -> dict[str, Any]:
    verdict = (group_verdict([Statement(**{**s, "conditions": []}) for s in statements])
               if statements else "supported")
    return {"id": cid, "title": f"Claim {cid}", "claim": "c", "setup": "s", "verdict": verdict,
            "criterion": "group rule", "key_number": f"key {cid}", "seeds": [0, 1, 2],
            "seconds": 1.0, "caveats": [], "config": {}, "statements": statements,
            "numbers": {"per_seed": [{"err": 1.0, "name": "a"}, {"err": 2.0, "name": "b"},
                                     {"err": 4.0, "name": "c"}],
                        "curve": [[1.0, 10.0], [2.0, 20.0], [3.0, 60.0]],
                        "effect": [0.5, -0.5, 1.5], "grid": [1, 2], "single": 0.25}}


def _document(quick: bool, smoke_field: bool = True) -> dict[str, Any]:
    agree = _claim("agree", [_statement("a.one", "supported", True, 1.0),
                             _statement("a.two", "supported", True, 2.0)])
    split = _claim("split", [_statement("s.one", "supported", True, 1.0),
                             _statement("s.two", "not supported", False, 0.1)])
    doc = {"claims": [agree, split], "failed": [], "order": ["agree", "split"],
           "lab_config": {"quick": quick, "seeds": [0, 1, 2]},
           "hardware": {"cpu": "Test CPU"}, "versions": {}}
    if smoke_field:
        doc["smoke_test"] = quick
    return doc


def _verdict_classes(page: str) -> list[str]:
    return re.findall(r'<span class="verdict ([^"]+)">', page)


def test_a_smoke_test_has_a_banner_and_no_verdict_colours() -> None:
    quick = render_html(_document(quick=True))
    full = render_html(_document(quick=False))
    assert '<div id="smoke-test" role="alert">' in quick and 'id="smoke-test"' not in full
    assert html.escape(SMOKE_TEST_TEXT) in quick
    assert '<body data-run-kind="smoke test">' in quick and 'data-run-kind="full"' in full
    assert re.search(r"<title>SMOKE TEST", quick) and not re.search(r"<title>SMOKE", full)
    # every verdict of the smoke test in the one neutral style; the full run's in colour
    assert set(_verdict_classes(quick)) == {"v-smoke"}
    assert set(_verdict_classes(full)) == {"v-supported", "v-partly-supported",
                                           "v-not-supported"}
    assert len(_verdict_classes(quick)) == len(_verdict_classes(full))


def test_the_top_level_field_decides_and_old_files_fall_back_to_lab_config() -> None:
    assert is_smoke_test({"smoke_test": True, "lab_config": {"quick": False}})
    assert not is_smoke_test({"smoke_test": False, "lab_config": {"quick": True}})
    assert is_smoke_test({"lab_config": {"quick": True}}) and not is_smoke_test({})
    assert 'id="smoke-test"' in render_html(_document(quick=True, smoke_field=False))


def test_summary_lists_statements_under_their_claim() -> None:
    page = render_html(_document(quick=False))
    summary = page[page.index("<table class='summary'>"):]
    summary = summary[:summary.index("</table>")]
    rows = re.findall(r'<tr class="(claim|statement)"[^>]*>(.*?)</tr>', summary)
    cells = [(kind, re.sub(r"<[^>]+>", "", row.replace("</td><td>", "|")).split("|"))
             for kind, row in rows]
    assert cells == [
        ("claim", ["Claim agree", "supported", "key agree"]),
        ("statement", ["a.one", "supported", "text of a.one"]),
        ("statement", ["a.two", "supported", "text of a.two"]),
        ("claim", ["Claim split", "partly supported", "key split"]),
        ("statement", ["s.one", "supported", "text of s.one"]),
        ("statement", ["s.two", "not supported", "text of s.two"])]
    for sid in ("a.one", "a.two", "s.one", "s.two"):  # each link has its block
        assert f'href="#{statement_anchor(sid)}"' in page
        assert f'id="{statement_anchor(sid)}"' in page


def test_a_statement_shows_its_criterion_before_its_conditions_and_numbers() -> None:
    page = render_html(_document(quick=False))
    start = page.index(f'id="{statement_anchor("s.two")}"')
    block = page[start:page.index("</div>", start)]
    order = [block.index(x) for x in ("supported if gain of s.two &gt; 0.5 pp",
                                      "<table class='conditions'>", "<table class='per-seed'>")]
    assert order == sorted(order)
    assert re.search(r"<td>gain &gt; 0.5 pp</td><td>0.1 pp</td><td>no</td>", block)
    # the statement's per-seed numbers: 0.1, 1.1, 2.1 and their mean 1.1
    assert re.search(r"<td>gain_pp</td><td class=\"num\">0.1</td><td class=\"num\">1.1</td>"
                     r"<td class=\"num\">2.1</td><td class=\"num\">1.1</td>", block)


def test_a_claim_whose_statements_disagree_says_so() -> None:
    page = render_html(_document(quick=False))
    notes = re.findall(r'<p class="disagreement">(.*?)</p>', page)
    assert notes == ["The statements disagree (supported: s.one; not supported: s.two)."]
    assert page.index(notes[0]) > page.index('id="claim-split"')


def test_per_seed_rows_against_a_hand_split() -> None:
    numbers = _claim("x", [])["numbers"]
    rows = per_seed_rows(numbers, 3)
    assert rows == [("per_seed / err", [1.0, 2.0, 4.0]),
                    ("curve [0]", [1.0, 2.0, 3.0]), ("curve [1]", [10.0, 20.0, 60.0]),
                    ("effect", [0.5, -0.5, 1.5])]
    other = split_numbers(numbers, 3)[1]
    assert other == [("grid", [1, 2]), ("single", 0.25)]
    assert per_seed_rows({"one": [1.0]}, 1) == []  # one seed: a list of one is ambiguous


def test_per_seed_table_values_and_means() -> None:
    page = render_html(_document(quick=False))
    start = page.index('<section id="claim-agree">')
    section = page[start:page.index("</section>", start)]
    tables = re.findall(r"<table class='per-seed'>(.*?)</table>", section)
    claim_table = tables[-1]  # the claim's own numbers come after its statements
    assert "<th>seed 0</th><th>seed 1</th><th>seed 2</th><th>mean</th>" in claim_table
    rows = {r[0]: [float(v) for v in r[1:]] for r in (
        re.findall(r"<td[^>]*>([^<]*)</td>", row)
        for row in re.findall(r"<tr><td>.*?</tr>", claim_table))}
    for name, values in per_seed_rows(_claim("agree", [])["numbers"], 3):
        assert rows[name][:3] == values
        assert abs(rows[name][3] - sum(values) / 3) < 1e-3 * max(1.0, abs(sum(values)))
