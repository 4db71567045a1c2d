"""A pool as a Ray Dataset of chunks: one row per ``chunk`` consecutive examples.

Rows are ``{"chunk": i, "start": first row, "x": (rows, ...) array}``. Chunking is fixed by
the row order and ``chunk`` alone, never by Ray's batching, so chunk ``i`` holds the same rows
and gets the same seed on any cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dropkit._validate import check_positive_int
from dropkit.distributed._ray import import_ray
from dropkit.errors import DropkitTypeError, DropkitValueError, expected

CHUNK_COLUMNS = ("chunk", "start", "x")


def load_array(path: str | Path) -> np.ndarray:
    """A pool saved as ``.npy`` or as a tensor in ``.pt``."""
    path = Path(path)
    if not path.exists():
        raise DropkitValueError(expected("data", "an existing .npy or .pt file", str(path)))
    if path.suffix == ".npy":
        return np.load(path)
    if path.suffix == ".pt":
        data = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(data, torch.Tensor):
            return data.numpy()
    raise DropkitValueError(expected("data", "a .npy file or a .pt file holding one tensor",
                                     str(path)))


def _rows(source: Any, chunk: int) -> Iterator[np.ndarray]:
    """Consecutive row blocks of ``source`` (array, tensor, path, iterable or Ray Dataset)."""
    ray = import_ray()
    if isinstance(source, (str, Path)):
        source = load_array(source)
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
    if isinstance(source, np.ndarray):
        if source.ndim == 0 or source.shape[0] == 0:
            raise DropkitValueError(expected("data", "a non-empty pool (N >= 1 rows)",
                                             source.shape))
        for start in range(0, source.shape[0], chunk):
            yield source[start:start + chunk]
        return
    if isinstance(source, ray.data.Dataset):
        # Rows of examples in a column "x": re-blocked in order through the driver (once).
        if "x" not in source.columns():
            raise DropkitValueError(expected("data", "a Ray Dataset with a column 'x' of "
                                             "examples (or one made by to_chunks)",
                                             source.columns()))
        ctx = ray.data.DataContext.get_current()
        keep = ctx.execution_options.preserve_order
        ctx.execution_options.preserve_order = True  # chunk i must be rows i*chunk onwards
        try:
            for batch in source.iter_batches(batch_size=chunk, batch_format="numpy"):
                yield np.asarray(batch["x"])
        finally:
            ctx.execution_options.preserve_order = keep
        return
    raise DropkitTypeError(expected("data", "a tensor, numpy array, .npy/.pt path or Ray "
                                    "Dataset", type(source).__name__))


def iter_chunks(source: Any, chunk: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(index, start, rows)`` of the pool in order; a Dataset from `to_chunks` as it is."""
    ray = import_ray()
    if isinstance(source, ray.data.Dataset) and set(CHUNK_COLUMNS) <= set(source.columns()):
        for row in source.iter_rows():  # one row per chunk, each carrying its own index
            yield int(row["chunk"]), int(row["start"]), np.asarray(row["x"])
        return
    start = 0
    for i, block in enumerate(_rows(source, chunk)):
        yield i, start, block
        start += block.shape[0]


def to_chunks(source: Any, chunk: int = 1024) -> Any:
    """The pool as a Ray Dataset of chunks (returned as is if it already is one)."""
    ray = import_ray()
    chunk = check_positive_int("chunk", chunk)
    if isinstance(source, ray.data.Dataset) and set(CHUNK_COLUMNS) <= set(source.columns()):
        return source
    return ray.data.from_items([{"chunk": i, "start": start, "x": block}
                                for i, start, block in iter_chunks(source, chunk)])
