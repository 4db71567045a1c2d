"""Result sets on disk: replaced together, SIGINT held back during the renames, a cut-off
commit finished by the next writer, an unfinished one rolled back."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest

from dropkit.errors import DropkitValueError
from dropkit.experiments import record

OLD = {"a.json": "old a", "b.html": "old b"}
NEW = {"a.json": "new a", "b.html": "new b"}


def _files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    record.write_result_set(tmp_path, OLD)
    assert _files(tmp_path) == OLD
    return tmp_path


def test_a_set_replaces_the_old_one_with_ordinary_file_modes(folder: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        record.write_result_set(folder, NEW)
    finally:
        os.umask(old_umask)
    assert _files(folder) == NEW  # and no temporary or journal file is left
    assert stat.S_IMODE((folder / "a.json").stat().st_mode) == 0o644


def test_sigint_during_the_renames_lands_after_them(folder: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.replace
    sent: list[int] = []

    def replace_then_ctrl_c(src: object, dst: object) -> None:
        real(src, dst)
        if Path(str(dst)).name == "a.json" and not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C between the two renames

    monkeypatch.setattr(record.os, "replace", replace_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        record.write_result_set(folder, NEW)
    assert sent and _files(folder) == NEW


def test_a_commit_cut_off_is_finished_by_the_next_writer(folder: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A process killed after the journal but between the renames (simulated: the second
    rename fails) leaves a mix on disk, which `recover` completes to the new set."""
    real = os.replace

    def die_on_b(src: object, dst: object) -> None:
        if Path(str(dst)).name == "b.html":
            raise OSError("killed")
        real(src, dst)

    monkeypatch.setattr(record.os, "replace", die_on_b)
    with pytest.raises(OSError, match="killed"):
        record.write_result_set(folder, NEW)
    monkeypatch.setattr(record.os, "replace", real)
    assert (folder / "a.json").read_text() == "new a"  # mixed until recovered
    assert (folder / "b.html").read_text() == "old b"
    record.recover(folder)
    assert _files(folder) == NEW


def test_a_set_cut_off_before_its_commit_is_rolled_back(folder: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real = record._write_temp
    written: list[Path] = []

    def die_before_the_journal(where: Path, data: bytes) -> Path:
        if data.startswith(b'{"moves"'):
            raise KeyboardInterrupt
        written.append(real(where, data))
        return written[-1]

    monkeypatch.setattr(record, "_write_temp", die_before_the_journal)
    with pytest.raises(KeyboardInterrupt):
        record.write_result_set(folder, NEW)
    assert len(written) == 2 and _files(folder) == OLD  # the temporaries were removed
    stale = folder / ".dropkit-tmp-left-by-a-kill"  # as SIGKILL would leave one
    stale.write_text("half")
    record.recover(folder)
    assert _files(folder) == OLD


def test_bad_names_and_output_folders(tmp_path: Path) -> None:
    with pytest.raises(DropkitValueError, match="plain file names"):
        record.write_result_set(tmp_path, {"../x": "no"})
    (tmp_path / "f").write_text("x")
    with pytest.raises(DropkitValueError, match="`--out` to be a folder"):
        record.check_output_dir(tmp_path / "f")
    with pytest.raises(DropkitValueError, match="`out` to be a writable folder"):
        record.check_output_dir(tmp_path / "f" / "sub", "out")
    assert record.check_output_dir(tmp_path / "new" / "deep") == tmp_path / "new" / "deep"
    assert list((tmp_path / "new" / "deep").iterdir()) == []  # the probe file is gone


def test_environment_names_versions_and_hardware() -> None:
    import torch

    env = record.environment(3)
    assert env["versions"]["torch"] == torch.__version__ and env["hardware"]["threads"] == 3
    assert env["hardware"]["cores"] == os.cpu_count()


@pytest.mark.parametrize("to", ["process", "other thread"])
@pytest.mark.parametrize("call", ["write", "check"])
def test_ctrl_c_right_after_the_temporary_file_is_made_leaves_no_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str, to: str) -> None:
    # a Ctrl-C that lands just after mkstemp created the file (before the caller's cleanup
    # could own it) must not leave the file behind, whichever thread the OS hands it to (in a
    # full run torch's worker threads exist, and a signal masked in the main thread alone
    # went to one of them)
    import tempfile
    import threading
    import time

    real = tempfile.mkstemp
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()

    def mkstemp_then_ctrl_c(*args: object, **kwargs: object) -> tuple[int, str]:
        made = real(*args, **kwargs)  # type: ignore[call-overload]
        if to == "process":
            os.kill(os.getpid(), signal.SIGINT)
        else:
            assert other.ident is not None
            signal.pthread_kill(other.ident, signal.SIGINT)
        # the main thread runs Python signal handlers at its next check; a signal the OS gave
        # another thread is seen a little later: let it arrive here, inside the window
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            time.sleep(0.001)
        return made  # type: ignore[no-any-return]

    monkeypatch.setattr(record.tempfile, "mkstemp", mkstemp_then_ctrl_c)
    try:
        with pytest.raises(KeyboardInterrupt):
            if call == "write":
                record.write_text_atomic(tmp_path / "a.json", "{}")
            else:
                record.check_output_dir(tmp_path / "out")
    finally:
        stop.set()
        other.join()
    left = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert left == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
