"""`dropkit lint FACTORY`: exit codes, table and JSON output, and one-line usage errors."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import pytest

from dropkit.commands.lint import register

TESTS = Path(__file__).resolve().parent


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="dropkit")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["lint", *argv])
    rc = args.func(args)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(autouse=True)
def _importable(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))


def test_clean_model_exits_0(capsys):
    rc, out, err = _run(["lint_models:vgg_factory", "--input-shape", "2,3,8,8"], capsys)
    assert rc == 0 and "dataflow: torch.fx" in out and "no findings" in out and err == ""


def test_warning_exits_1_with_table(capsys):
    rc, out, _ = _run(["lint_models:densenet_pair"], capsys)  # (module, input): no shape needed
    assert rc == 1
    assert "SEVERITY" in out and "dropout-before-batchnorm" in out and "layers.0" in out


def test_info_only_exits_0_and_json(capsys):
    rc, out, _ = _run(["lint_models:gpt_pair", "--json"], capsys)
    data = json.loads(out)
    assert rc == 0 and data["method"] == "hooks"
    assert [f["rule"] for f in data["findings"]] == ["dropout-on-embeddings"]
    assert {"rule", "path", "severity", "message", "fix", "reference"} <= set(data["findings"][0])


def test_factory_from_a_module_file_in_the_current_directory(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_lint_net.py").write_text(textwrap.dedent("""
        from torch import nn
        def build():
            return nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.0), nn.Linear(8, 2))
    """))
    monkeypatch.chdir(tmp_path)
    rc, out, err = _run(["my_lint_net:build", "--input-shape", "3,4", "--json"], capsys)
    # a p=0 placeholder is information (exit 0), said once: not also "no-dropout"
    assert rc == 0 and [(f["rule"], f["path"], f["severity"])
                        for f in json.loads(out)["findings"]] == [("dead-dropout", "1", "info")]
    assert str(tmp_path) not in sys.path  # the current directory was only borrowed
    rc, out, err = _run(["my_lint_net:build"], capsys)  # no input: static rules, with a note
    assert rc == 0 and "no forward pass" in out and "only the rules" in err
    assert "dead-dropout" in out and "1 info(s)" in out


@pytest.mark.parametrize("argv, message", [
    (["no_such_module_xyz:f"], "cannot import 'no_such_module_xyz': ModuleNotFoundError"),
    (["lint_models"], "FACTORY must look like package.module:callable"),
    (["lint_models:nope"], "'lint_models' has no attribute 'nope'"),
    (["lint_models:NOT_CALLABLE"], "is a int, not a callable"),
    (["lint_models:not_a_module"], "must return an nn.Module or a (module, example_input) pair"),
    (["lint_models:vgg_factory", "--input-shape", "2,5,8,8"], "forward raised RuntimeError"),
    (["lint_models:vgg_factory", "--input-shape", "2,three"], "--input-shape must be positive"),
    (["lint_models:vgg_factory", "--input-shape", "0,3"], "--input-shape must be positive"),
    (["lint_models:Untraceable", "--input-shape", "2,8", "--method", "fx"],
     "a model torch.fx can trace"),
])
def test_bad_usage_is_one_line_and_exit_2(argv, message, capsys):
    rc, out, err = _run(argv, capsys)
    assert rc == 2 and out == ""
    assert err.startswith("dropkit lint: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
