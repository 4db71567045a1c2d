"""The cache of compiled native kernels: a private folder whose entries are verified before
they are loaded.

Loading a shared library runs its constructors, so the cache is treated as code, not data:

- the folder must be a real folder owned by the current user; one owned by someone else (or a
  symlink) is refused with an error, and one that others may write into is made private
  (0700) and emptied, with a warning;
- an entry ``<name>.so`` is trusted only if it and its sidecar ``<name>.so.sha256`` are
  regular files owned by the current user that nobody else may write, and the sha256 of the
  library equals the one the sidecar recorded when it was built;
- anything else under that name (planted, truncated by a crash or a full disk, edited) is
  deleted and rebuilt, with a warning;
- a build writes a temporary file, records its hash, and renames both into place, so a reader
  never sees half a library.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

from dropkit.errors import DropkitError

__all__ = ["build_into", "private_dir", "sidecar", "verified"]


def sidecar(target: Path) -> Path:
    """Where the sha256 of ``target`` is recorded."""
    return target.with_name(target.name + ".sha256")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()  # a library is small


def private_dir(folder: Path) -> Path:
    """``folder`` created (0700) or checked: ours and private; see the module docstring."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    info = os.lstat(folder)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise DropkitError(
            f"the native kernel cache {folder} is not a plain folder (a symlink or a file); "
            "refusing to load code from it. Remove it or set DROPKIT_CACHE_DIR to a folder "
            "of your own.")
    if info.st_uid != os.geteuid():
        raise DropkitError(
            f"the native kernel cache {folder} belongs to user id {info.st_uid}, not to you "
            f"({os.geteuid()}); refusing to load code from it. Set DROPKIT_CACHE_DIR to a "
            "folder of your own.")
    if stat.S_IMODE(info.st_mode) & 0o077:
        # others could have put files here: make it private and start it afresh
        os.chmod(folder, 0o700)
        removed = 0
        for entry in folder.iterdir():
            with contextlib.suppress(OSError):
                entry.unlink()
                removed += 1
        warnings.warn(
            f"the native kernel cache {folder} was open to other users (mode "
            f"{stat.S_IMODE(info.st_mode):o}); it is now private (700) and its {removed} "
            "entries were removed (they will be rebuilt).", RuntimeWarning, stacklevel=3)
    return folder


def _trusted_file(path: Path) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid()
            and not stat.S_IMODE(info.st_mode) & 0o022)


def verified(target: Path) -> bool:
    """Whether ``target`` is a cache entry that may be loaded. An entry that exists but fails
    a check is removed with a warning (the caller rebuilds it)."""
    if not os.path.lexists(target):
        return False
    record = sidecar(target)
    why = None
    if not _trusted_file(target):
        why = "is not a private file of yours"
    elif not _trusted_file(record):
        why = "has no trusted record of its sha256 (built elsewhere, or cut off while built)"
    else:
        try:
            expected = record.read_text().strip()
            ok = expected == _sha256(target)
        except (OSError, UnicodeDecodeError):
            ok = False
        if ok:
            return True
        why = "does not match the sha256 recorded when it was built (damaged or replaced)"
    warnings.warn(f"the native kernel cache entry {target} {why}; rebuilding it.",
                  RuntimeWarning, stacklevel=3)
    for path in (target, record):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return False


def build_into(target: Path, compile_to: Callable[[str], None]) -> Path:
    """Run ``compile_to(temporary path)``, record the result's sha256, and rename both into
    place (library first: a library without its record is never loaded)."""
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=target.parent)
    os.close(fd)
    fd, tmp_record = tempfile.mkstemp(prefix=".build-", suffix=".sha256", dir=target.parent)
    os.close(fd)
    try:
        compile_to(tmp)
        os.chmod(tmp, 0o700)  # the linker may have created it anew with the umask's mode
        Path(tmp_record).write_text(_sha256(Path(tmp)) + "\n")
        os.replace(tmp, target)
        os.replace(tmp_record, sidecar(target))
    finally:
        for path in (tmp, tmp_record):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return target
