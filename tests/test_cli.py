"""The `dropkit` command: help, bad usage, and the demo end to end (tiny sizes)."""

import pytest

from dropkit.cli import main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "demo" in capsys.readouterr().out


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_unknown_command_is_bad_usage():
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2


def test_demo_prints_the_comparison(capsys):
    assert main(["demo", "--epochs", "2", "--samples", "4"]) == 0
    out = capsys.readouterr().out
    assert "weight scaling" in out and "MC dropout (S=4)" in out
    for angle in ("0 ", "45 ", "90 "):
        assert any(line.startswith(angle) for line in out.splitlines())


def test_demo_bad_samples_is_a_clean_error(capsys):
    assert main(["demo", "--epochs", "1", "--samples", "0"]) == 2
    assert "`samples` to be an integer >= 1" in capsys.readouterr().err
