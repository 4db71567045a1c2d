"""MNIST loader on tiny fake idx files made here: parsing, MD5 checks, cache, no network."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from dropkit.datasets.mnist import MNIST_FILES, download_mnist, load_mnist, read_idx
from dropkit.errors import DropkitError, DropkitValueError

SIZES = {"train": 5, "t10k": 3}


def _idx(array: np.ndarray) -> bytes:
    """An idx file written by hand from the format's definition (independent of read_idx)."""
    head = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return head + array.astype(np.uint8).tobytes()


@pytest.fixture
def mirror(tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, np.ndarray]]:
    """A folder with the four fake files, their MD5s and their arrays."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "mirror"
    folder.mkdir()
    sums, arrays = {}, {}
    for name in MNIST_FILES:
        n = SIZES[name.split("-")[0]]
        a = (rng.integers(0, 256, (n, 28, 28)) if "images" in name
             else rng.integers(0, 10, n)).astype(np.uint8)
        (folder / name).write_bytes(gzip.compress(_idx(a)))
        sums[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
        arrays[name] = a
    return folder, sums, arrays


def test_load_reads_pixels_and_labels_exactly(mirror) -> None:
    folder, sums, arrays = mirror
    data = load_mnist(folder, files=sums)
    want = torch.from_numpy(arrays["train-images-idx3-ubyte.gz"]).double() / 255
    assert data.x_train.shape == (5, 1, 28, 28)
    assert torch.allclose(data.x_train[:, 0].double(), want, atol=1e-7)
    assert data.y_test.tolist() == arrays["t10k-labels-idx1-ubyte.gz"].tolist()
    assert data.y_train.dtype == torch.int64


def test_download_into_cache_then_offline(mirror, tmp_path, monkeypatch) -> None:
    folder, sums, arrays = mirror
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    url = folder.as_uri() + "/"  # a local mirror: no network
    data = load_mnist(mirrors=["file:///nowhere/", url], files=sums)  # first mirror fails
    cached = tmp_path / "cache" / "dropkit" / "mnist"
    assert sorted(p.name for p in cached.iterdir()) == sorted(MNIST_FILES)
    assert data.y_train.tolist() == arrays["train-labels-idx1-ubyte.gz"].tolist()
    shutil.rmtree(folder)  # offline now: the cache alone serves the next load
    again = load_mnist(mirrors=[url], files=sums)
    assert torch.equal(again.x_test, data.x_test)


def test_a_wrong_checksum_keeps_nothing(mirror, tmp_path) -> None:
    folder, sums, _ = mirror
    bad = dict(sums, **{"t10k-images-idx3-ubyte.gz": "0" * 32})
    dest = tmp_path / "dest"
    with pytest.raises(DropkitError, match="t10k-images.*MD5 0{32}.*but got MD5 [0-9a-f]{32}"):
        download_mnist(dest, mirrors=[folder.as_uri() + "/"], files=bad)
    assert not (dest / "t10k-images-idx3-ubyte.gz").exists()
    assert not list(dest.glob("*.part"))
    # A corrupt file already in a root is refused on load, named with both sums.
    shutil.copy(folder / "train-labels-idx1-ubyte.gz", folder / "train-images-idx3-ubyte.gz")
    with pytest.raises(DropkitValueError, match="train-images.*MD5 [0-9a-f]{32}.*corrupt"):
        load_mnist(folder, files=sums)


def test_bad_inputs_are_named(mirror, tmp_path) -> None:
    folder, sums, _ = mirror
    with pytest.raises(DropkitValueError, match="`root`.*train-images.*download=True"):
        load_mnist(tmp_path / "empty", files=sums)  # an explicit root is not downloaded into
    with pytest.raises(DropkitError, match="Could not download.*offline"):
        download_mnist(tmp_path / "d", mirrors=["file:///nowhere/"], files=sums)
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(bytes([0, 0, 0x0D, 1, 0, 0, 0, 2]) + b"\0" * 8))
    with pytest.raises(DropkitValueError, match="idx file of unsigned bytes"):
        read_idx(bad)
    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2])))
    with pytest.raises(DropkitValueError, match="9 values.*but got 2 values"):
        read_idx(short)
