"""`RayScorer`: a pool of Ray actors kept between calls, each holding the model once.

Ray Data's ``map_batches`` starts a fresh actor pool for every execution (each actor imports
torch and dropkit and unpickles the model: seconds per call). An active-learning loop scores
its pool once per round, so the scorer starts its actors once, ships the model to each of them
once (one copy in the object store, fetched by each actor), and afterwards sends only chunks of
rows. After retraining, `RayScorer.update` ships the new weights (a state dict) once per actor.

Chunk ``i`` is seeded from ``(seed, i)`` exactly as `dropkit.active.score_pool` seeds it, so
the scores equal single-process scoring bitwise on CPU at the same torch thread count.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from dropkit._validate import check_choice, check_positive_int
from dropkit.active.scoring import COLUMNS, score_chunk
from dropkit.active.selection import top_k
from dropkit.distributed._ray import connect
from dropkit.distributed.chunks import iter_chunks
from dropkit.errors import DropkitValueError, expected
from dropkit.inspection.borrow import check_model

#: Chunks queued per actor: one running, one waiting, so no actor idles between chunks.
IN_FLIGHT = 2


class _Worker:
    """The actor: the model (received once) and a method scoring one chunk."""

    def __init__(self, model: nn.Module, threads: int) -> None:
        torch.set_num_threads(threads)  # the scores are bitwise equal only at equal threads
        self.model = model

    def update(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)

    def replace(self, model: nn.Module) -> None:
        self.model = model

    def identity(self) -> tuple[int, int]:
        """(process id, id of the held model): unchanged while the actor and model live."""
        return os.getpid(), id(self.model)

    def score(self, index: int, start: int, x: np.ndarray,
              kw: dict[str, Any]) -> dict[str, np.ndarray]:
        xs = torch.from_numpy(np.array(x))  # a writable copy of the read-only block
        cols = score_chunk(self.model, xs, index=index, **kw)
        out = {name: cols[name].numpy() for name in COLUMNS}
        out["index"] = np.arange(start, start + xs.shape[0])
        return out


@dataclass(frozen=True)
class DistributedScores:
    """Per-example columns ``{name: (N,)}`` in pool order, and the top-k pool indices."""

    columns: dict[str, torch.Tensor]
    top_k: torch.Tensor
    measure: str

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.columns[check_choice("name", name, COLUMNS)]


class RayScorer:
    """Score pools on Ray with ``workers`` actors that live until `close` (or ``with``).

    ``RayScorer(model).score(pool, seed=r)`` gives the same columns as
    ``score_pool(model, pool, seed=r)``. The actors start on the first call (or `start`); the
    model is pickled once then, so later changes to the caller's model reach the actors only
    through `update`.

    Args:
        model: a trained model with dropout.
        samples, chunk: as in `dropkit.active.score_pool` (same values, same scores).
        address: a Ray cluster to join (``"auto"``, ``"ray://host:10001"``); None uses the
            running session or starts a local one.
        workers: actors in the pool. threads: torch threads (and Ray CPUs) per actor.
        from_logits, strategy: as in `dropkit.MCDropout`.

    Ray starts its worker processes at a raised niceness (``RAY_worker_niceness``; a driver at
    nice 5 got actors at nice 19): on a node busy with other work the actors get the CPU last,
    so set ``RAY_worker_niceness=0`` there (see benchmarks/RESULTS.md).
    """

    def __init__(self, model: nn.Module, *, samples: int = 20, chunk: int = 1024,
                 address: str | None = None, workers: int = 2, threads: int = 1,
                 from_logits: bool = True, strategy: str = "auto") -> None:
        self.model = check_model(model)
        self.samples = check_positive_int("samples", samples)
        self.chunk = check_positive_int("chunk", chunk)
        self.workers = check_positive_int("workers", workers)
        self.threads = check_positive_int("threads", threads)
        self.address, self.from_logits, self.strategy = address, from_logits, strategy
        self._actors: list[Any] = []

    def start(self) -> RayScorer:
        """Start the actors, ship the model to each and wait until all are up (once)."""
        if not self._actors:
            ray = connect(self.address)
            worker = ray.remote(num_cpus=self.threads)(_Worker)
            ref = ray.put(self.model)  # one pickled copy; each actor fetches it once
            actors = [worker.remote(ref, self.threads) for _ in range(self.workers)]
            ray.get([a.identity.remote() for a in actors])  # each up, holding the model
            self._actors = actors
        return self

    def update(self, model: nn.Module) -> None:
        """Ship ``model``'s weights (same architecture) to every actor, once each."""
        ray = connect(self.address)
        self.model = check_model(model)
        if self._actors:
            ref = ray.put({k: v.detach().cpu() for k, v in model.state_dict().items()})
            ray.get([a.update.remote(ref) for a in self._actors])

    def score(self, data: Any, *, seed: int = 0, measure: str = "bald",
              k: int = 10) -> DistributedScores:
        """Columns of every row of ``data`` and the top-``k`` rows by ``measure``.

        ``data``: a tensor, numpy array, ``.npy``/``.pt`` path, a Ray Dataset of examples
        (column ``"x"``, read in order through the driver) or a chunked Dataset from
        `dropkit.distributed.to_chunks`.
        """
        seed = check_positive_int("seed", seed, minimum=0)
        measure = check_choice("measure", measure, COLUMNS[:-1])
        k = check_positive_int("k", k)
        parts = self._score_chunks(data, self.chunk, dict(
            samples=self.samples, seed=seed, from_logits=self.from_logits,
            strategy=self.strategy))
        return _collect(parts, measure, k)

    def score_model(self, model: nn.Module, x: torch.Tensor, *, samples: int, seed: int,
                    chunk: int, from_logits: bool = True) -> dict[str, torch.Tensor]:
        """`dropkit.active.PoolScorer` for `dropkit.active.ActiveLearner`: ``model``'s
        columns of the pool ``x``, as `dropkit.active.score_pool` gives them (bitwise on CPU
        at the actors' thread count). A ``model`` other than the one held (retrained each
        round) is shipped to the actors first; the actors themselves are kept."""
        if model is not self.model:  # a new model each round: shipped whole (weights and
            # train/eval flags), one pickled copy fetched once by each actor
            self.model = check_model(model)
            if self._actors:
                ray = connect(self.address)
                ref = ray.put(self.model)
                ray.get([a.replace.remote(ref) for a in self._actors])
        seed = check_positive_int("seed", seed, minimum=0)
        parts = self._score_chunks(x, check_positive_int("chunk", chunk), dict(
            samples=check_positive_int("samples", samples), seed=seed,
            from_logits=from_logits, strategy=self.strategy))
        return _collect(parts, "bald", 1).columns

    def _score_chunks(self, data: Any, chunk: int,
                      kw: dict[str, Any]) -> list[dict[str, np.ndarray]]:
        """Every chunk of ``data`` scored by the actors (in the order they finish)."""
        chunks = iter_chunks(data, chunk)
        first = next(chunks, None)  # the data is checked before any actor starts
        if first is None:
            raise DropkitValueError(expected("data", "a non-empty pool (N >= 1 rows)",
                                             "no rows"))
        chunks = itertools.chain([first], chunks)
        ray = connect(self.address)
        self.start()
        pending: dict[Any, Any] = {}
        parts: list[dict[str, np.ndarray]] = []

        def submit(actor: Any) -> None:
            item = next(chunks, None)
            if item is not None:
                index, start, x = item
                pending[actor.score.remote(index, start, x, kw)] = actor

        for _ in range(IN_FLIGHT):
            for actor in self._actors:
                submit(actor)
        while pending:
            (done,), _ = ray.wait(list(pending), num_returns=1)
            actor = pending.pop(done)
            parts.append(ray.get(done))
            submit(actor)
        return parts

    def close(self) -> None:
        """Stop the actors (the next `score` starts new ones)."""
        if self._actors:
            ray = connect(self.address)
            for actor in self._actors:
                ray.kill(actor)
            self._actors = []

    def __enter__(self) -> RayScorer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"RayScorer(samples={self.samples}, chunk={self.chunk}, workers={self.workers},"
                f" threads={self.threads}, started={bool(self._actors)})")


def _collect(parts: list[dict[str, np.ndarray]], measure: str, k: int) -> DistributedScores:
    """Chunks back in pool order, checked to cover every row exactly once."""
    index = np.concatenate([p["index"] for p in parts])
    order = np.argsort(index, kind="stable")
    if not np.array_equal(index[order], np.arange(index.shape[0])):  # pragma: no cover
        raise RuntimeError("dropkit.distributed: some pool rows were not scored exactly once")
    columns = {name: torch.from_numpy(np.concatenate([p[name] for p in parts])[order])
               for name in COLUMNS}
    best = top_k(columns[measure].double(), min(k, index.shape[0]))
    return DistributedScores(columns, best, measure)
