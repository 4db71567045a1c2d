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


@pytest.mark.parametrize(("argv", "flag", "got"), [
    (["--samples", "0"], "--samples", "0"),
    (["--epochs", "-1"], "--epochs", "-1"),
    (["--epochs", "0"], "--epochs", "0"),
    (["--seed", "-3"], "--seed", "-3"),
])
def test_demo_bad_flags_are_refused_before_any_work(argv, flag, got, capsys, monkeypatch):
    """Checked before the data is loaded or a model built: training is made to explode."""
    import dropkit.lab.train as train_module

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the flags")

    monkeypatch.setattr(train_module, "train", no_training)
    assert main(["demo", *argv]) == 2
    err = capsys.readouterr().err
    assert err == (f"dropkit demo: error: Expected argument `{flag}` to be an integer "
                   f">= {0 if flag == '--seed' else 1}, but got {got}.\n")
