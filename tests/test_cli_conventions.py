"""CLI conventions: missing extras, --quiet/--no-progress/TQDM_DISABLE, logging, flag wording,
``python -m dropkit`` and a --help that needs no torch."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import dropkit.commands.demo as demo_cmd
import dropkit.commands.lab as lab_cmd
import dropkit.lab.runner as lab_runner
from dropkit._extras import MissingExtraError, missing_modules, require
from dropkit._progress import NON_TTY_INTERVAL_S, progress_bar
from dropkit.cli import _leaf_parsers, build_parser, main
from dropkit.commands._common import flag_wording, wants_progress
from dropkit.errors import DropkitValueError

SRC = Path(__file__).resolve().parents[1] / "src"


# --- extras: one line, exit 2, the exact install command, before any work ------------------

@pytest.mark.parametrize(("argv", "hidden", "line"), [
    (["demo"], "sklearn",
     "dropkit demo needs scikit-learn, which is not installed: pip install 'dropkit[digits]'"),
    (["lab", "--quick"], "matplotlib",
     "dropkit lab needs matplotlib, which is not installed: pip install 'dropkit[lab]'"),
    (["active", "--quick"], "sklearn",
     "dropkit active needs scikit-learn, which is not installed: pip install 'dropkit[lab]'"),
    (["score", "--model", "m:f", "--data", "x.npy", "--ray"], "ray",
     "dropkit score needs ray, which is not installed: pip install 'dropkit[ray]'"),
    (["lab", "--quick", "--ray"], "ray",
     "dropkit lab needs ray, which is not installed: pip install 'dropkit[ray]'"),
    (["active", "--quick", "--ray", "ray://head:10001"], "ray",
     "dropkit active needs ray, which is not installed: pip install 'dropkit[ray]'"),
    (["bench", "uci", "--out", "o", "--ray"], "ray",
     "dropkit bench uci needs ray, which is not installed: pip install 'dropkit[ray]'"),
])
def test_missing_extra_is_one_line_and_exit_2(argv, hidden, line, tmp_path, monkeypatch,
                                              capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, hidden, None)  # find_spec now reports it missing
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err == line + "\n" and out == ""
    assert not any(tmp_path.iterdir())  # no report folder, nothing started


def test_both_lab_modules_missing_are_named_together(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    assert missing_modules("lab") == ["matplotlib", "scikit-learn"]
    with pytest.raises(MissingExtraError) as info:
        require("lab", "dropkit lab")
    assert str(info.value) == ("dropkit lab needs matplotlib and scikit-learn, which are not "
                               "installed: pip install 'dropkit[lab]'")
    assert isinstance(info.value, ImportError)


def test_score_without_ray_flag_does_not_need_ray(tmp_path, monkeypatch, capsys):
    """Only --ray needs the extra: without it the run goes on to its own checks."""
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["score", "--model", "m:f", "--data", str(tmp_path / "no.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dropkit score: error: Expected argument `--data` to be an existing")


# --- every flag checked before work, errors in flags ------------------------------------

@pytest.mark.parametrize(("argv", "flag"), [
    (["--k", "0"], "--k"), (["--samples", "0"], "--samples"), (["--chunk", "-1"], "--chunk"),
    (["--seed", "-1"], "--seed"), (["--measure", "nope"], "--measure"),
])
def test_score_flags_are_checked_before_the_model_is_built(argv, flag, capsys):
    # the factory's module does not exist: a check after building would report --model
    assert main(["score", "--model", "no_such_module:f", "--data", "x.npy", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dropkit score: error: Expected argument `{flag}` to be ")


def test_active_bad_seeds_name_the_flag(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["active", "--seeds", "0,x", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "dropkit active: error: Expected argument `--seeds` to be comma-separated integers "
        ">= 0 such as 0,1,2, but got '0,x'.\n")
    assert not out.exists()


def test_bench_errors_speak_in_flags(tmp_path, capsys):
    assert main(["bench", "uci", "--root", str(tmp_path / "none"), "--datasets", "energy",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "Pass `--root`" in err and "root=" not in err


def test_flag_wording_converts_only_this_commands_options():
    args = build_parser().parse_args(["bench", "uci", "--out", "o"])
    err = flag_wording(DropkitValueError("Expected argument `splits_per_batch` to be x; "
                                         "`name` and `root` too."), args)
    assert str(err) == "Expected argument `--splits-per-batch` to be x; `name` and `--root` too."
    assert type(err) is DropkitValueError


# --- --quiet / --no-progress / TQDM_DISABLE ------------------------------------------------

def test_every_command_has_quiet_verbose_and_no_progress():
    leaves = _leaf_parsers(build_parser())
    assert {p.prog for p in leaves} == {
        "dropkit lab", "dropkit demo", "dropkit lint", "dropkit bench uci", "dropkit active",
        "dropkit score"}
    for p in leaves:
        for flag in ("--quiet", "--verbose", "--no-progress"):
            assert flag in p._option_string_actions, (p.prog, flag)


@pytest.mark.parametrize(("argv", "env", "want"), [
    ([], None, True), (["--no-progress"], None, False), (["--quiet"], None, False),
    ([], "1", False), ([], "", True),
])
def test_progress_follows_flags_and_tqdm_disable(argv, env, want, monkeypatch):
    if env is None:
        monkeypatch.delenv("TQDM_DISABLE", raising=False)
    else:
        monkeypatch.setenv("TQDM_DISABLE", env)
    for command in (["demo"], ["lint", "m:f"], ["lab"]):
        args = build_parser().parse_args([*command, *argv])
        assert wants_progress(args) is want, command


def test_lab_gets_no_progress_under_tqdm_disable(monkeypatch, tmp_path):
    """The lab passes ``disable=not cfg.progress`` to tqdm, which beats TQDM_DISABLE; the CLI
    turns TQDM_DISABLE into ``LabConfig.progress=False``."""
    seen = []

    def fake_run_lab(cfg, **kwargs):
        seen.append(cfg.progress)
        raise DropkitValueError("stop here")

    # both places: commands/lab.py imports run_lab at the top today, and may import it lazily
    monkeypatch.setattr(lab_cmd, "run_lab", fake_run_lab, raising=False)
    monkeypatch.setattr(lab_runner, "run_lab", fake_run_lab)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert main(["lab", "--quick", "--out", str(tmp_path / "a")]) == 2
    monkeypatch.delenv("TQDM_DISABLE")
    assert main(["lab", "--quick", "--out", str(tmp_path / "b")]) == 2
    assert seen == [False, True]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _redraws(stream: io.StringIO, items: int) -> int:
    """Redraws of a bar over ``items`` items when each item takes one (fake) second."""
    clock = iter(range(10**6))
    with progress_bar(range(items), file=stream) as bar:
        bar._time = lambda: float(next(clock))  # tqdm's clock, read at every update
        bar.start_t = bar.last_print_t = bar._time()
        list(bar)
    return stream.getvalue().count("\r")


def test_progress_bar_redraws_once_a_minute_off_a_terminal(monkeypatch):
    """600 one-second items: about 600 redraws on a terminal, at most one a minute in a log."""
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    assert _redraws(_Tty(), 600) >= 500
    assert 3 <= _redraws(io.StringIO(), 600) <= 600 // 60 + 2  # start, end, <= 1 a minute
    assert progress_bar(range(3), file=io.StringIO()).mininterval == NON_TTY_INTERVAL_S == 60
    monkeypatch.setenv("TQDM_MININTERVAL", "5")  # the user's own setting wins
    assert progress_bar(range(3), file=io.StringIO()).mininterval == 5.0


def test_progress_bar_reads_tqdm_disable_when_called(monkeypatch):
    """tqdm reads TQDM_DISABLE at import and ``disable=False`` beats it; progress_bar reads it
    at each call, so a bar asked for is still off."""
    monkeypatch.setenv("TQDM_DISABLE", "1")
    quiet = io.StringIO()
    with progress_bar(range(3), file=quiet, enabled=True) as bar:
        assert bar.disable
        list(bar)
    assert quiet.getvalue() == ""
    monkeypatch.delenv("TQDM_DISABLE")
    assert not progress_bar(range(3), file=quiet).disable
    assert progress_bar(range(3), file=quiet, enabled=False).disable


# --- logging -------------------------------------------------------------------------------

def test_library_logger_has_a_null_handler():
    import dropkit._log  # noqa: F401 - installs it

    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("dropkit").handlers)


@pytest.mark.parametrize(("flags", "shown"), [
    ([], ["info", "warning"]), (["--quiet"], ["warning"]),
    (["--verbose"], ["debug", "info", "warning"]),
])
def test_cli_prints_dropkit_logs_by_level_and_restores_logging(flags, shown, monkeypatch,
                                                               capsys):
    def fake_demo(args):
        log = logging.getLogger("dropkit.demo")
        log.debug("debug"), log.info("info"), log.warning("warning")
        return 0

    monkeypatch.setattr(demo_cmd, "run", fake_demo)
    logger = logging.getLogger("dropkit")
    before = (list(logger.handlers), logger.level)
    assert main(["demo", *flags]) == 0
    assert capsys.readouterr().err.splitlines() == [f"dropkit.demo: {m}" for m in shown]
    assert (list(logger.handlers), logger.level) == before


# --- python -m dropkit and a --help without torch -------------------------------------------

_PROBE = """
import runpy, sys
sys.argv = ["dropkit", "--help"]
try:
    runpy.run_module("dropkit", run_name="__main__")
except SystemExit as stop:
    print("EXIT", stop.code)
print("TORCH", "torch" in sys.modules)
"""


@pytest.fixture(scope="module")
def help_probe() -> list[str]:
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_python_m_dropkit_runs_the_cli(help_probe):
    assert help_probe[0].startswith("usage: dropkit [-h] [--version] COMMAND")
    assert "EXIT 0" in help_probe


def test_help_imports_no_torch(help_probe):
    assert "TORCH False" in help_probe


# The same with the package's __init__ and commands/lab.py (which import torch) stubbed out:
# what this file's modules (cli.py, commands/*) import themselves for --help of every command.
_CLI_LAYER_PROBE = """
import sys, types
pkg = types.ModuleType("dropkit"); pkg.__path__ = [sys.argv[1] + "/dropkit"]
sys.modules["dropkit"] = pkg
lab = types.ModuleType("dropkit.commands.lab")
lab.register = lambda sub: sub.add_parser("lab")
sys.modules["dropkit.commands.lab"] = lab
from dropkit.cli import main
for argv in (["--help"], ["demo", "--help"], ["lint", "--help"], ["bench", "uci", "--help"],
             ["active", "--help"], ["score", "--help"]):
    try:
        main(argv)
    except SystemExit as stop:
        assert stop.code == 0, argv
heavy = ("torch", "numpy", "tqdm", "sklearn", "matplotlib", "ray")
print(sorted(m for m in heavy if m in sys.modules))
"""


def test_cli_layer_imports_nothing_heavy_for_help():
    done = subprocess.run([sys.executable, "-c", _CLI_LAYER_PROBE, str(SRC)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


_EVERY_HELP_PROBE = """
import sys
from dropkit.cli import COMMANDS, main
for name in ["", *[m.rsplit(".", 1)[1] for m in COMMANDS]]:
    try:
        main([name, "--help"] if name else ["--help"])
    except SystemExit:
        pass
print("HEAVY", sorted(m for m in ("torch", "numpy", "matplotlib", "sklearn", "ray")
                      if m in sys.modules))
"""


def test_help_of_every_command_imports_no_torch_with_the_real_package() -> None:
    # the real package (no stubs): the lazy dropkit/__init__ and lab/__init__ keep --help light
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", _EVERY_HELP_PROBE], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "HEAVY []"


def test_the_planned_strategy_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    import torch

    import dropkit
    from dropkit.mc.plan import plans

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.2),
                                torch.nn.Linear(4, 2)).eval()
    with caplog.at_level(logging.DEBUG, logger="dropkit"):
        dropkit.sample(model, torch.randn(5, 3), 4, seed=0)
        dropkit.sample(model, torch.randn(5, 3), 4, seed=0)  # the cached plan: no second log
    records = [r for r in caplog.records if r.name == "dropkit.mc.plan"]
    assert len(records) == 1 and records[0].levelno == logging.DEBUG
    (plan,) = plans(model)
    assert records[0].args is not None
    assert records[0].args[2:5] == (plan.strategy, plan.prefix, plan.samples_per_pass)
