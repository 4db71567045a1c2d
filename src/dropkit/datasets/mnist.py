"""MNIST for users' own active-learning runs: downloaded once into a cache, checked by MD5.

Never used by the tests or CI (they use scikit-learn's bundled digits): the four original
gzip files (LeCun, Cortes & Burges) are fetched from the first mirror that answers, written
atomically, and checked against the MD5 sums torchvision also uses
(``torchvision/datasets/mnist.py``), on download and on every load. The cache is
``$XDG_CACHE_HOME/dropkit/mnist`` (default ``~/.cache/dropkit/mnist``).

    data = load_mnist()          # about 11 MB on the first call, then from the cache
    data.x_train.shape           # (60000, 1, 28, 28), pixels in [0, 1]
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from dropkit.datasets.digits import Digits
from dropkit.errors import DropkitError, DropkitValueError, expected

#: The four files and their MD5 sums (as in torchvision's ``MNIST.resources``).
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
#: Tried in order (torchvision's list: the original site often refuses scripted downloads).
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_IDX_DTYPE = {0x08: np.uint8}  # MNIST's idx files hold unsigned bytes only


def default_mnist_cache() -> Path:
    """``$XDG_CACHE_HOME/dropkit/mnist`` or ``~/.cache/dropkit/mnist``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dropkit" / "mnist"


def md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)  # integrity against the published sums only
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(name: str, dest: Path, mirrors: Sequence[str], want: str, timeout: float) -> None:
    """Download ``name`` from the first mirror that answers; keep it only if its MD5 matches."""
    errors = []
    for mirror in mirrors:
        try:
            with urllib.request.urlopen(mirror + name, timeout=timeout) as response:  # noqa: S310
                payload = response.read()
        except (urllib.error.URLError, OSError, ValueError) as err:
            errors.append(f"{mirror}: {err}")
            continue
        tmp = dest.with_suffix(dest.suffix + ".part")
        tmp.write_bytes(payload)
        got = md5(tmp)
        if got != want:
            tmp.unlink()
            raise DropkitError(expected(name, f"MD5 {want} (the published file)",
                                        f"MD5 {got} from {mirror}; nothing was kept"))
        tmp.replace(dest)  # atomic: an interrupted download never leaves a half file
        return
    raise DropkitError(f"Could not download {name} from any mirror ({'; '.join(errors)}). "
                       f"Are you offline? Put the four MNIST .gz files in a folder and pass it "
                       f"as `root=`.")


def download_mnist(root: str | os.PathLike[str] | None = None, *,
                   mirrors: Sequence[str] = MIRRORS, files: Mapping[str, str] = MNIST_FILES,
                   timeout: float = 60.0) -> Path:
    """Download the files missing (or corrupt) under ``root`` (default: the cache); its path."""
    folder = Path(root).expanduser() if root is not None else default_mnist_cache()
    folder.mkdir(parents=True, exist_ok=True)
    for name, want in files.items():
        dest = folder / name
        if not (dest.exists() and md5(dest) == want):
            _fetch(name, dest, mirrors, want, timeout)
    return folder


def read_idx(path: Path) -> np.ndarray:
    """The array in a gzipped idx file (magic ``0 0 dtype ndim``, big-endian sizes, data)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPE:
        raise DropkitValueError(expected(str(path), "an idx file of unsigned bytes (magic 0 0 8 "
                                         "ndim)", f"first bytes {list(raw[:4])}"))
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    data = np.frombuffer(raw, _IDX_DTYPE[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DropkitValueError(expected(str(path), f"{int(np.prod(shape))} values for shape "
                                         f"{shape}", f"{data.size} values"))
    return data.reshape(shape)


def load_mnist(root: str | os.PathLike[str] | None = None, *, download: bool | None = None,
               mirrors: Sequence[str] = MIRRORS,
               files: Mapping[str, str] = MNIST_FILES) -> Digits:
    """MNIST as tensors: images ``(N, 1, 28, 28)`` in [0, 1] (60,000 train, 10,000 test).

    ``root`` defaults to the cache, into which missing files are downloaded; an explicit root
    is only read unless ``download=True`` (so a typo gives a "missing file" error, not a
    download). Every file is checked against its MD5 sum before it is read.
    """
    folder = Path(root).expanduser() if root is not None else default_mnist_cache()
    if download if download is not None else root is None:
        download_mnist(folder, mirrors=mirrors, files=files)
    arrays = []
    for name, want in files.items():
        path = folder / name
        if not path.exists():
            raise DropkitValueError(expected("root", f"a folder holding {name}",
                                             f"{folder} without it (download=True fetches it)"))
        got = md5(path)
        if got != want:
            raise DropkitValueError(expected(str(path), f"MD5 {want}", f"MD5 {got} (corrupt "
                                             "or a different file: delete it to download again)"))
        arrays.append(read_idx(path))
    x_train, y_train, x_test, y_test = arrays

    def images(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.float32) / 255.0).unsqueeze(1)  # (N, 1, 28, 28)

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.int64))

    return Digits(images(x_train), labels(y_train), images(x_test), labels(y_test))
