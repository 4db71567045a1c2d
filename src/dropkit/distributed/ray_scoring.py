"""`score_dataset`: MC dropout scores of a pool on Ray, the same as `score_pool` bitwise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from dropkit._validate import check_choice, check_positive_int
from dropkit.active.scoring import COLUMNS, score_chunk
from dropkit.active.selection import top_k
from dropkit.distributed._ray import connect
from dropkit.distributed.chunks import to_chunks
from dropkit.inspection.borrow import check_model as _check_model


class _ChunkScorer:
    """A Ray Data actor: holds the model (fetched once) and scores whole chunks."""

    def __init__(self, model_ref: list[Any], samples: int, seed: int, from_logits: bool,
                 strategy: str, threads: int) -> None:
        import ray

        torch.set_num_threads(threads)  # the scores are bitwise equal only at equal threads
        self.model = ray.get(model_ref[0])  # a list, so Ray does not resolve it per call
        self.kw = dict(samples=samples, seed=seed, from_logits=from_logits, strategy=strategy)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list[np.ndarray]] = {name: [] for name in ("index", *COLUMNS)}
        for cid, start, x in zip(batch["chunk"], batch["start"], batch["x"], strict=True):
            xs = torch.from_numpy(np.array(x))  # a writable copy of the read-only block
            cols = score_chunk(self.model, xs, index=int(cid), **self.kw)
            out["index"].append(np.arange(int(start), int(start) + xs.shape[0]))
            for name in COLUMNS:
                out[name].append(cols[name].numpy())
        return {k: np.concatenate(v) for k, v in out.items()}


@dataclass(frozen=True)
class DistributedScores:
    """Per-example columns ``{name: (N,)}`` in pool order, and the top-k pool indices."""

    columns: dict[str, torch.Tensor]
    top_k: torch.Tensor
    measure: str

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.columns[check_choice("name", name, COLUMNS)]


def score_dataset(model: nn.Module, data: Any, *, samples: int = 20, seed: int = 0,
                  chunk: int = 1024, measure: str = "bald", k: int = 10,
                  address: str | None = None, workers: int = 2, threads: int = 1,
                  from_logits: bool = True, strategy: str = "auto") -> DistributedScores:
    """Score a pool on Ray with ``workers`` actors; return its columns and top-``k``.

    Args:
        model: a trained model with dropout (pickled once into the object store).
        data: a tensor, numpy array, ``.npy``/``.pt`` path, a Ray Dataset of examples (column
            ``"x"``), or a chunked Dataset from `to_chunks`.
        samples, seed, chunk: as in `dropkit.active.score_pool` (same values, same scores).
        measure, k: the column ranked for the returned ``top_k`` (ties to the lower index).
        address: a Ray cluster to join (``"auto"``, ``"ray://host:10001"``); None uses the
            running session or starts a local one.
        workers: actors in the pool. threads: torch threads per actor.
    """
    model = _check_model(model)
    samples = check_positive_int("samples", samples)
    seed = check_positive_int("seed", seed, minimum=0)
    workers = check_positive_int("workers", workers)
    threads = check_positive_int("threads", threads)
    measure = check_choice("measure", measure, COLUMNS[:-1])
    k = check_positive_int("k", k)
    ray = connect(address)
    chunks = to_chunks(data, chunk)
    scored = chunks.map_batches(
        _ChunkScorer, batch_size=1, batch_format="numpy", concurrency=workers,
        num_cpus=threads,
        fn_constructor_kwargs=dict(model_ref=[ray.put(model)], samples=samples, seed=seed,
                                   from_logits=from_logits, strategy=strategy,
                                   threads=threads))
    parts = list(scored.iter_batches(batch_size=None, batch_format="numpy"))
    index = np.concatenate([p["index"] for p in parts])
    order = np.argsort(index, kind="stable")
    if not np.array_equal(index[order], np.arange(index.shape[0])):  # pragma: no cover
        raise RuntimeError("dropkit.distributed: some pool rows were not scored exactly once")
    columns = {name: torch.from_numpy(np.concatenate([p[name] for p in parts])[order])
               for name in COLUMNS}
    best = top_k(columns[measure].double(), min(k, index.shape[0]))
    return DistributedScores(columns, best, measure)
