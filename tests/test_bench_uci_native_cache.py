"""The native-kernel cache is code, not data: a planted, truncated or foreign entry is never
loaded; the folder is private; ``$CC`` may carry flags."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import torch

from dropkit.bench import uci_native
from dropkit.bench.uci_native_cache import sidecar
from dropkit.errors import DropkitError
from tests.native import require_native

SHAPE = (torch.float64, 3, 5)


def _cc() -> str:
    return shutil.which("cc") or shutil.which("gcc") or "cc"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder with one genuine entry, built once, with flags inside $CC (a CC that
    carries flags did not run at all before it was split like a shell command)."""
    require_native()
    root = tmp_path_factory.mktemp("built")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DROPKIT_CACHE_DIR", str(root))
        mp.setenv("CC", f"{_cc()} -O1")
        uci_native._build(*SHAPE)
    return root / "native"


@pytest.fixture()
def cache(built: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A copy of ``built`` of this test's own (the path differs per test, so the dynamic
    loader has not seen the library under that name yet)."""
    shutil.copytree(built, tmp_path / "cache" / "native")
    monkeypatch.setenv("DROPKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", f"{_cc()} -O1")
    return tmp_path / "cache" / "native"


def _entry(cache: Path) -> Path:
    (entry,) = cache.glob("*.so")
    return entry


def _planted(tmp_path: Path) -> tuple[Path, Path]:
    """A library whose constructor writes a marker file when it is loaded."""
    marker = tmp_path / "constructor-ran"
    src = tmp_path / "planted.c"
    src.write_text('#include <stdio.h>\n__attribute__((constructor)) static void planted(void)'
                   f' {{ FILE *f = fopen("{marker}", "w"); if (f) fclose(f); }}\n'
                   "long has_openmp(void) { return 42; }\n")
    lib = tmp_path / "planted.so"
    subprocess.run([_cc(), "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib, marker


def _load() -> object:
    """The library as the benchmark loads it (bypassing the per-process memo)."""
    lib = uci_native._library.__wrapped__(*SHAPE)
    assert not isinstance(lib, str), lib
    return lib


def test_a_planted_library_is_never_loaded(cache: Path, tmp_path: Path) -> None:
    lib, marker = _planted(tmp_path)
    entry = _entry(cache)
    shutil.copy(lib, entry)  # planted under the predictable name; its record says otherwise
    with pytest.warns(RuntimeWarning, match="does not match the sha256"):
        loaded = _load()
    assert not marker.exists()
    assert loaded.has_openmp() in (0, 1)  # the genuine kernels, rebuilt (planted says 42)
    assert sidecar(entry).read_text().strip() == hashlib.sha256(entry.read_bytes()).hexdigest()


def test_a_planted_library_with_its_own_record_is_never_loaded(cache: Path,
                                                                tmp_path: Path) -> None:
    """Planted with a matching sha256 record, both owned by another user (as in a shared
    cache folder): still refused."""
    if os.geteuid() != 0:
        pytest.skip("giving files to another user needs root")
    lib, marker = _planted(tmp_path)
    entry = _entry(cache)
    shutil.copy(lib, entry)
    sidecar(entry).write_text(hashlib.sha256(lib.read_bytes()).hexdigest())
    for path in (entry, sidecar(entry)):
        os.chown(path, 12345, 12345)
    with pytest.warns(RuntimeWarning, match="not a private file of yours"):
        assert _load().has_openmp() in (0, 1)
    assert not marker.exists()


def test_a_folder_of_another_user_is_refused(cache: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    lib, marker = _planted(tmp_path)
    entry = _entry(cache)
    shutil.copy(lib, entry)
    sidecar(entry).write_text(hashlib.sha256(lib.read_bytes()).hexdigest())
    os.chown(cache, 12345, 12345)
    with pytest.raises(DropkitError, match="belongs to user id 12345"):
        uci_native._build(*SHAPE)
    assert isinstance(uci_native._library.__wrapped__(*SHAPE), str)  # the reason, no library
    assert not marker.exists() and entry.read_bytes() == lib.read_bytes()  # left alone


def test_a_truncated_entry_is_rebuilt_with_a_warning(cache: Path) -> None:
    entry = _entry(cache)
    whole = entry.read_bytes()
    entry.write_bytes(whole[:1000])  # what a crash or a full disk leaves (SIGBUS on loading)
    with pytest.warns(RuntimeWarning, match="rebuilding"):
        assert _load().has_openmp() in (0, 1)
    assert len(entry.read_bytes()) == len(whole)


def test_an_open_cache_folder_is_made_private_and_emptied(cache: Path) -> None:
    entry = _entry(cache)
    os.chmod(cache, 0o777)
    stranger = cache / "someone-elses.so"
    stranger.write_bytes(b"\x7fELF")
    with pytest.warns(RuntimeWarning, match="open to other users"):
        uci_native._build(*SHAPE)
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    assert not stranger.exists() and entry.exists()  # emptied, then the entry rebuilt
    assert stat.S_IMODE(os.stat(entry).st_mode) & 0o077 == 0


def test_a_symlinked_cache_folder_is_refused(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "native").symlink_to(elsewhere)
    monkeypatch.setenv("DROPKIT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DropkitError, match="not a plain folder"):
        uci_native._build(*SHAPE)
