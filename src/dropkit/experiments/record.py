"""Recording experiment results: the environment, JSON files and result sets on disk.

A *result set* is the few files one run leaves in its output folder (the lab's
``results.json`` and ``index.html``; the bench's ``uci.md``, ``uci.csv`` and ``uci.json``).
They are replaced together, so that a run interrupted at any point leaves either the old set or
the new one, never a mix:

1. every new file is written and flushed under a temporary name in the folder;
2. a journal ``.dropkit-commit.json`` naming them is written atomically (the commit point);
3. the temporary files are renamed over the old ones, with SIGINT held back meanwhile (the
   renames take microseconds; Ctrl-C then lands just after them);
4. the journal is removed.

A process killed outright between 2 and 4 leaves the journal: the next ``write_result_set`` or
``recover`` on that folder finishes the renames (roll forward); temporary files without a
journal are an unfinished step 1 and are deleted (roll back).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from dropkit.errors import DropkitValueError, expected

__all__ = [
    "check_output_dir",
    "environment",
    "recover",
    "write_json",
    "write_result_set",
    "write_text_atomic",
]

_JOURNAL = ".dropkit-commit.json"
_TMP_PREFIX = ".dropkit-tmp-"


def environment(threads: int | None = None) -> dict[str, Any]:
    """Library versions and hardware, as written into every result file."""
    import numpy
    import torch

    from dropkit import __version__

    versions: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                                "numpy": numpy.__version__, "dropkit": __version__}
    for extra in ("matplotlib", "scikit-learn", "tqdm"):
        try:  # the installed version, without importing the package
            versions[extra] = importlib.metadata.version(extra)
        except importlib.metadata.PackageNotFoundError:
            versions[extra] = None
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        usable = os.cpu_count()
    hardware = {"cpu": _cpu_model(), "cores": os.cpu_count(), "usable_cores": usable,
                "threads": threads if threads is not None else torch.get_num_threads(),
                "platform": platform.platform()}
    return {"versions": versions, "hardware": hardware}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def check_output_dir(path: str | os.PathLike[str], arg: str = "--out") -> Path:
    """Create the folder ``path`` if needed and prove it writable (a file is created and
    removed), so a run fails before its work, not after; a clear error names ``arg``."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise DropkitValueError(expected(arg, "a folder (or a path to create one)",
                                         f"{str(out)!r}, which is a file"))
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe, release = _mkstemp_held(out)
        try:
            release()
            os.close(fd)
        finally:
            os.unlink(probe)
    except OSError as err:
        raise DropkitValueError(expected(arg, "a writable folder",
                                         f"{str(out)!r} ({err.strerror or err})")) from None
    return out


def _mkstemp_held(folder: Path) -> tuple[int, str, Callable[[], None]]:
    """``tempfile.mkstemp`` in ``folder`` with Ctrl-C held back, and the function that lets it
    through again.

    A KeyboardInterrupt between the file's creation and the caller's ``try`` would leave a
    temporary file no one removes (seen in the interrupt tests). Until the caller, as the first
    statement of its ``try``, calls the returned ``release``, a SIGINT only sets a flag (a
    Python handler, which runs in the main thread whichever thread the signal reached; masking
    the signal would not do, since torch's worker threads leave it unmasked); ``release``
    restores the previous handler and raises the held signal again, so the ``try``'s cleanup
    removes the file.
    """
    held: list[int] = []
    main = threading.current_thread() is threading.main_thread()  # signal.signal's rule
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: held.append(signum)) \
        if main else None

    def release() -> None:
        if main:
            signal.signal(signal.SIGINT, previous)
            if held:
                signal.raise_signal(signal.SIGINT)

    try:
        fd, name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=folder)
    except BaseException:
        release()
        raise
    return fd, name, release


def _write_temp(folder: Path, data: bytes) -> Path:
    """``data`` in a new temporary file of ``folder``, flushed to disk."""
    fd, name, release = _mkstemp_held(folder)
    handed = False  # whether fd belongs to the file object (which then closes it)
    try:
        release()
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)  # a result file, not a secret: mkstemp's 0600 is too tight
        with os.fdopen(fd, "wb") as handle:
            handed = True
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            if not handed:
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return Path(name)


def _encode(content: str | bytes) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


def write_text_atomic(path: str | os.PathLike[str], content: str | bytes) -> Path:
    """Replace one file atomically (a temporary file in the same folder, then rename)."""
    target = Path(path)
    tmp = _write_temp(target.parent, _encode(content))
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def write_json(path: str | os.PathLike[str], document: Any) -> Path:
    """``document`` as indented JSON (no NaN: ``allow_nan=False``), replaced atomically."""
    return write_text_atomic(path, json.dumps(document, indent=2, allow_nan=False) + "\n")


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold SIGINT back for the block and deliver it (as KeyboardInterrupt) afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals only reach the main thread; nothing to hold here
        return
    pending: list[object] = []
    previous = signal.signal(signal.SIGINT, lambda *a: pending.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


def _finish(folder: Path, journal: Path) -> None:
    """Rename what the journal lists (the ones not yet renamed) and drop the journal."""
    try:
        moves = json.loads(journal.read_text())["moves"]
    except (OSError, ValueError, KeyError, TypeError):
        journal.unlink(missing_ok=True)  # a half-written journal: nothing was committed
        return
    for tmp_name, final_name in moves:
        if (folder / tmp_name).exists():
            os.replace(folder / tmp_name, folder / final_name)
    journal.unlink(missing_ok=True)


def recover(folder: str | os.PathLike[str]) -> None:
    """Finish a committed result set whose renames were cut off, and delete the temporary
    files of an uncommitted one (see the module docstring)."""
    out = Path(folder)
    journal = out / _JOURNAL
    if journal.exists():
        _finish(out, journal)
    for stale in out.glob(_TMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            stale.unlink()


def write_result_set(folder: str | os.PathLike[str], files: Mapping[str, str | bytes]) -> None:
    """Replace the files ``{name: content}`` of ``folder`` as one set (module docstring)."""
    out = Path(folder)
    for name in files:
        if Path(name).name != name or name.startswith("."):
            raise DropkitValueError(expected("files", "plain file names", repr(name)))
    recover(out)
    temps: dict[str, Path] = {}
    try:
        for name, content in files.items():
            temps[name] = _write_temp(out, _encode(content))
        moves = [[temps[name].name, name] for name in files]
        journal_tmp = _write_temp(out, json.dumps({"moves": moves}).encode())
        with _sigint_held():
            os.replace(journal_tmp, out / _JOURNAL)  # the commit point
            _finish(out, out / _JOURNAL)
    except BaseException:
        if not (out / _JOURNAL).exists():  # not committed: the old set stays
            for tmp in temps.values():
                with contextlib.suppress(OSError):
                    tmp.unlink()
        raise
