"""The UCI split-layout loader: shared data, unseen data sets, bad files, downloads."""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from dropkit.datasets import uci
from dropkit.datasets.uci import UCIDataset, download_uci, load_uci
from dropkit.errors import DropkitError, DropkitValueError
from tests.shared_data import SHARED, needs_shared


def _write_layout(root: Path, name: str = "toy", *, rows: int = 10, data: str | None = None,
                  train: list[list[int]] | None = None, test: list[list[int]] | None = None,
                  features: str = "0\n1\n", target: str = "2\n") -> Path:
    folder = root / name / "data"
    folder.mkdir(parents=True)
    if data is None:
        data = "".join(f"{i}\t{2 * i}.5 {i * i}e-1\n" for i in range(rows)) + "\n"
    (folder / "data.txt").write_text(data)
    (folder / "index_features.txt").write_text(features)
    (folder / "index_target.txt").write_text(target)
    train = train if train is not None else [[0, 2, 4, 6, 8, 1, 3], [9, 7, 5, 3, 1, 0, 2]]
    test = test if test is not None else [[5, 7, 9], [4, 6, 8]]
    (folder / "n_splits.txt").write_text(f"{len(train)}\n")
    for i, (tr, te) in enumerate(zip(train, test, strict=True)):
        (folder / f"index_train_{i}.txt").write_text("".join(f"{v}.0\n" for v in tr))
        (folder / f"index_test_{i}.txt").write_text("".join(f"{v}\n" for v in te))
    (folder / "n_hidden.txt").write_text("50\n")
    (folder / "n_epochs.txt").write_text("20\n")
    (folder / "dropout_rates.txt").write_text("0.005\n0.05\n")
    (folder / "tau_values.txt").write_text("0.5 1.5\n")
    return folder


def test_unseen_dataset_in_the_layout_loads(tmp_path: Path) -> None:
    _write_layout(tmp_path)
    ds = load_uci("toy", tmp_path)
    assert isinstance(ds, UCIDataset)
    assert ds.X.shape == (10, 2) and ds.y.shape == (10,)
    np.testing.assert_array_equal(ds.X[:, 0], np.arange(10.0))
    np.testing.assert_allclose(ds.y, np.arange(10.0) ** 2 / 10)
    assert ds.n_splits == 2 and ds.n_epochs == 20 and ds.n_hidden == 50
    assert ds.dropout_rates == (0.005, 0.05) and ds.tau_values == (0.5, 1.5)
    X_tr, y_tr, X_te, y_te = ds.split(1)
    np.testing.assert_array_equal(X_tr[:, 0], [9, 7, 5, 3, 1, 0, 2])  # file order kept
    np.testing.assert_array_equal(y_te, np.array([4, 6, 8]) ** 2 / 10)
    assert load_uci("toy", tmp_path, n_splits=1).n_splits == 1
    with pytest.raises(DropkitValueError, match="`i`"):
        ds.split(2)


def test_root_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_layout(tmp_path)
    monkeypatch.setenv(uci.UCI_ROOT_ENV, str(tmp_path))
    assert load_uci("toy").X.shape == (10, 2)


@needs_shared
def test_shared_boston_matches_numpy_loadtxt() -> None:
    ds = load_uci("bostonHousing", SHARED)
    folder = SHARED / "bostonHousing" / "data"
    raw = np.loadtxt(folder / "data.txt")
    assert ds.X.shape == (506, 13) and ds.n_splits == 20
    np.testing.assert_array_equal(ds.y, raw[:, 13])
    train = np.loadtxt(folder / "index_train_3.txt").astype(int)
    np.testing.assert_array_equal(ds.splits[3][0], train)
    assert ds.tau_values == (0.1, 0.15, 0.2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"data": "1 2 3\n4 5\n"}, r"line 2: ragged row with 2 values"),
        ({"data": "1 2 3\n4 x 6\n"}, r"line 2: non-numeric value 'x'"),
        ({"train": [[0, 1, 12]], "test": [[3]]}, r"row index 12 out of range \[0, 10\)"),
        ({"train": [[0, 1, 2]], "test": [[2, 3]]}, r"split 0 has 1 rows in both train and test"),
        ({"target": "1\n"}, r"target column 1 is also listed among the features"),
        ({"features": "0\n5\n"}, r"feature column index 5 out of range \[0, 3\)"),
        ({"train": [[0, 1.5]], "test": [[3]]}, r"whole numbers"),
    ],
)
def test_bad_files_get_clear_errors(tmp_path: Path, kwargs: dict, match: str) -> None:
    if "train" in kwargs and kwargs["train"] == [[0, 1.5]]:
        folder = _write_layout(tmp_path, train=[[0, 1]], test=[[3]])
        (folder / "index_train_0.txt").write_text("0\n1.5\n")
    else:
        _write_layout(tmp_path, **kwargs)
    with pytest.raises(DropkitValueError, match=match):
        load_uci("toy", tmp_path)


def test_missing_files_and_folders(tmp_path: Path) -> None:
    with pytest.raises(DropkitValueError, match="Missing folder .*no data set 'toy'"):
        load_uci("toy", tmp_path)
    folder = _write_layout(tmp_path)
    (folder / "index_test_1.txt").unlink()
    with pytest.raises(DropkitValueError, match="Missing file .*index_test_1.txt"):
        load_uci("toy", tmp_path)
    with pytest.raises(DropkitValueError, match="`n_splits`"):
        load_uci("toy", tmp_path, n_splits=3)


def test_offline_download_gives_a_clear_error(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(uci.urllib.request, "urlopen", offline)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(uci.UCI_ROOT_ENV, raising=False)
    with pytest.raises(DropkitError, match="Could not download .*offline"):
        load_uci("bostonHousing")  # no root, no env: the cache, which downloads
    assert uci.default_uci_cache() == tmp_path / "cache" / "dropkit" / "uci"
    assert not list((tmp_path / "cache").rglob("*.txt"))  # nothing half-written


def _sha256_of(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.iterdir()}


def test_download_fetches_the_layout_from_a_base_url(tmp_path: Path) -> None:
    """Download from a local file:// mirror (no network): every file lands in the cache."""
    src = tmp_path / "mirror"
    _write_layout(src)
    dest = tmp_path / "cache"
    sums = _sha256_of(src / "toy" / "data")
    folder = download_uci("toy", dest, base_url=src.as_uri(), checksums=sums)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in (src / "toy" / "data").iterdir())
    ds = load_uci("toy", dest)
    np.testing.assert_array_equal(ds.X, load_uci("toy", src).X)
    with pytest.raises(DropkitError, match="Could not download"):
        download_uci("other", dest, base_url=(tmp_path / "nowhere").as_uri(), checksums=sums)


def test_download_refuses_a_file_whose_checksum_differs(tmp_path: Path) -> None:
    """One changed byte in the source: the download stops at that file and saves nothing of
    it; the message names the file and both digests (hashlib computes the expected one)."""
    src = tmp_path / "mirror"
    folder = _write_layout(src)
    sums = _sha256_of(folder)
    text = (folder / "data.txt").read_text()
    (folder / "data.txt").write_text(text.replace("0\t0.5", "0\t0.6", 1))
    got = hashlib.sha256((folder / "data.txt").read_bytes()).hexdigest()
    assert got != sums["data.txt"]
    dest = tmp_path / "cache"
    with pytest.raises(DropkitError) as info:
        download_uci("toy", dest, base_url=src.as_uri(), checksums=sums)
    assert str(info.value) == (
        f"Checksum mismatch for {src.as_uri()}/toy/data/data.txt: expected SHA-256 "
        f"{sums['data.txt']}, got {got}. The file differs from the pinned revision; "
        "it was not saved.")
    assert not list(dest.rglob("*"))  # nothing written, not even a .part file


def test_download_needs_checksums_for_an_unpinned_data_set(tmp_path: Path) -> None:
    src = tmp_path / "mirror"
    _write_layout(src)
    with pytest.raises(DropkitValueError, match="`name` to be a data set of the pinned source "
                       r"\(bostonHousing, concrete, energy, kin8nm, naval"):
        download_uci("toy", tmp_path / "cache", base_url=src.as_uri())
    assert not (tmp_path / "cache").exists()


@needs_shared
def test_pinned_checksums_match_the_shared_files_and_verify_a_download(tmp_path: Path) -> None:
    """The pinned table equals hashlib over ../shared/uci (byte-identical to the pinned
    revision), file for file; downloading bostonHousing from a file:// copy of it passes the
    check, and a copy with one index file changed is refused at that file."""
    pinned = uci.pinned_checksums()
    for folder in sorted(SHARED.glob("*/data")):
        assert _sha256_of(folder) == pinned[folder.parent.name], folder.parent.name
    # 8 sets of 48 files (20 splits) and protein-tertiary-structure's 18 (5 splits)
    assert len(pinned) == 9 and sum(len(v) for v in pinned.values()) == 8 * 48 + 18
    assert uci.UCI_REVISION in uci.UCI_BASE_URL
    dest = download_uci("bostonHousing", tmp_path / "ok", base_url=SHARED.as_uri())
    assert _sha256_of(dest) == pinned["bostonHousing"]
    bad = tmp_path / "bad" / "bostonHousing" / "data"
    shutil.copytree(SHARED / "bostonHousing" / "data", bad)
    (bad / "index_train_7.txt").write_text("0\n")
    with pytest.raises(DropkitError, match="Checksum mismatch .*index_train_7.txt"):
        download_uci("bostonHousing", tmp_path / "cache", base_url=(tmp_path / "bad").as_uri())
    assert not (tmp_path / "cache" / "bostonHousing" / "data" / "index_train_7.txt").exists()
