"""`ActiveLearner`: the Bayesian active-learning loop (Gal, Islam & Ghahramani, ICML 2017).

Each round: fit a fresh model on the labelled set, measure it on the test set (MC dropout
predictive), score the unlabelled pool with streamed MC dropout (`score_pool`: no samples
kept), choose ``batch_size`` points (`acquire`), ask the oracle for their labels, repeat until
``budget`` labels were acquired. Every random choice comes from a seed derived from
``(config.seed, round, purpose)``, so two runs with one seed make identical selections.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from dropkit._progress import progress_bar
from dropkit._validate import check_choice, check_positive_int, check_tensor
from dropkit.active.batchbald import batchbald
from dropkit.active.measures import MEASURES
from dropkit.active.scoring import LocalScorer, PoolScorer, derive_seed
from dropkit.active.selection import SELECTIONS, select
from dropkit.errors import DropkitTypeError, DropkitValueError, expected
from dropkit.mc.mcdropout import MCDropout
from dropkit.metrics import accuracy, negative_log_likelihood

ACQUISITIONS = (*MEASURES, "batchbald")

#: fit(x, y, seed) -> a trained model (a fresh one each call: retraining from scratch, as in
#: the ICML 2017 protocol).
FitFn = Callable[[torch.Tensor, torch.Tensor, int], nn.Module]
#: oracle(pool indices) -> their labels.
Oracle = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ActiveConfig:
    """Settings of one active-learning run (written into every result).

    acquisition: one of `ACQUISITIONS`. selection: ``"topk"`` or a stochastic rule of
    `dropkit.active.selection` (not with BatchBALD, which builds its batch itself). beta: that
    rule's inverse temperature. batch_size: labels acquired per round. budget: labels acquired
    in total. samples: MC dropout passes. candidates: BatchBALD looks only at this many top-BALD
    points (their samples are the only ones kept). num_configs: BatchBALD's exact/sampled
    switch. chunk: pool rows per scoring chunk.
    """

    acquisition: str = "bald"
    selection: str = "topk"
    beta: float = 1.0
    batch_size: int = 10
    budget: int = 100
    samples: int = 20
    candidates: int = 100
    num_configs: int = 10_000
    chunk: int = 1024
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("acquisition", self.acquisition, ACQUISITIONS)
        check_choice("selection", self.selection, SELECTIONS)
        if self.acquisition == "batchbald" and self.selection != "topk":
            raise DropkitValueError(expected("selection", "'topk' with acquisition='batchbald'",
                                             repr(self.selection)))
        for name in ("batch_size", "budget", "samples", "candidates", "num_configs", "chunk"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("seed", self.seed, minimum=0)
        if self.candidates < self.batch_size:
            raise DropkitValueError(expected("candidates", f">= batch_size ({self.batch_size})",
                                             self.candidates))


@dataclass
class Round:
    """One round: the labelled-set size the model was fitted on, its test scores, the time."""

    labelled: int
    accuracy: float
    nll: float
    fit_seconds: float
    score_seconds: float
    acquired: list[int] = field(default_factory=list)  # pool indices chosen after this round


@dataclass
class ActiveResult:
    """All rounds of a run, the labelled pool indices in acquisition order, and the config."""

    config: ActiveConfig
    rounds: list[Round]
    labelled: list[int]

    def to_dict(self) -> dict[str, object]:
        return {"config": asdict(self.config), "rounds": [asdict(r) for r in self.rounds],
                "labelled": self.labelled}


def acquire(model: nn.Module, x_pool: torch.Tensor, config: ActiveConfig, *, seed: int,
            from_logits: bool = True, scorer: PoolScorer | None = None) -> torch.Tensor:
    """Pool row indices ``(batch_size,)`` to label next, chosen from a trained ``model``;
    the pool is scored by ``scorer`` (default: `LocalScorer`, this process)."""
    k = min(config.batch_size, x_pool.shape[0])
    scorer = scorer if scorer is not None else LocalScorer()
    scores = scorer.score_model(model, x_pool, samples=config.samples,
                                seed=derive_seed(seed, 0), chunk=config.chunk,
                                from_logits=from_logits)
    if config.acquisition != "batchbald":
        return select(scores[config.acquisition], k, selection=config.selection,
                      beta=config.beta, generator=torch.Generator().manual_seed(
                          derive_seed(seed, 1)))
    # BatchBALD needs samples, but only of the candidates: pre-filter by BALD, then sample them.
    cand = select(scores["bald"], min(config.candidates, x_pool.shape[0]))
    mc = MCDropout(model, samples=config.samples, from_logits=from_logits, progress=False,
                   seed=derive_seed(seed, 2))
    kept = mc.predict(x_pool[cand]).samples  # (S, K, C)
    assert kept is not None
    res = batchbald(kept, k, from_logits=from_logits, num_configs=config.num_configs,
                    generator=torch.Generator().manual_seed(derive_seed(seed, 3)))
    return cand[res.indices]


def lookup(targets: torch.Tensor) -> Oracle:
    """An oracle for experiments: the held-back labels of the pool."""
    return lambda idx: targets[idx]


class ActiveLearner:
    """The loop. ``ActiveLearner(fit, x_pool, oracle, initial=..., x_test=..., y_test=...,
    config=ActiveConfig(...)).run()`` returns an `ActiveResult`.

    Args:
        fit: ``fit(x, y, seed) -> model``: trains a fresh model with dropout and returns it.
        x_pool: the pool ``(N, ...)``; labels come only from ``oracle``.
        oracle: ``oracle(indices) -> labels`` (`lookup` for held-back labels).
        initial: pool indices labelled before the first round.
        x_test, y_test: where accuracy and NLL of the MC dropout predictive are measured.
        config: `ActiveConfig`. progress: a tqdm bar per round (TQDM_DISABLE=1 turns it off).
        scorer: scores the pool each round (a `dropkit.active.PoolScorer`): default
            `LocalScorer` (this process); a `dropkit.distributed.RayScorer` scores on a Ray
            cluster and selects the same points (bitwise on CPU at the same thread count).
    """

    def __init__(self, fit: FitFn, x_pool: torch.Tensor, oracle: Oracle, *,
                 initial: Sequence[int] | torch.Tensor, x_test: torch.Tensor,
                 y_test: torch.Tensor, config: ActiveConfig | None = None,
                 progress: bool = True, scorer: PoolScorer | None = None) -> None:
        if not callable(fit) or not callable(oracle):
            raise DropkitTypeError(expected("fit and oracle", "callables",
                                            f"{type(fit).__name__}, {type(oracle).__name__}"))
        if scorer is not None and not callable(getattr(scorer, "score_model", None)):
            raise DropkitTypeError(expected("scorer", "a PoolScorer (LocalScorer, RayScorer)",
                                            type(scorer).__name__))
        self.scorer = scorer if scorer is not None else LocalScorer()
        self.fit, self.oracle = fit, oracle
        self.x_pool = check_tensor("x_pool", x_pool)
        self.initial = torch.as_tensor(initial, dtype=torch.int64).flatten()
        n = self.x_pool.shape[0]
        if self.initial.numel() == 0 or bool((self.initial < 0).any() | (self.initial >= n).any()) \
                or self.initial.unique().numel() != self.initial.numel():
            raise DropkitValueError(expected("initial", f"distinct pool indices in [0, {n})",
                                             self.initial.tolist()[:10]))
        self.x_test, self.y_test = check_tensor("x_test", x_test), check_tensor("y_test", y_test)
        self.config = config or ActiveConfig()
        if self.config.budget > n - self.initial.numel():
            raise DropkitValueError(expected("budget", f"at most the unlabelled pool size "
                                             f"{n - self.initial.numel()}", self.config.budget))
        self.progress = progress

    def _evaluate(self, model: nn.Module, seed: int) -> tuple[float, float]:
        mc = MCDropout(model, samples=self.config.samples, keep_samples=False, progress=False,
                       seed=seed)
        mean = mc.predict(self.x_test).mean
        return (accuracy(mean, self.y_test, from_logits=False),
                negative_log_likelihood(mean, self.y_test, from_logits=False))

    def run(self) -> ActiveResult:
        cfg = self.config
        labelled = self.initial.tolist()
        labels = self.oracle(self.initial)
        unlabelled = torch.ones(self.x_pool.shape[0], dtype=torch.bool)
        unlabelled[self.initial] = False
        n_rounds = -(-cfg.budget // cfg.batch_size) + 1
        rounds: list[Round] = []
        bar = progress_bar(range(n_rounds), desc=f"active {cfg.acquisition}", unit="round",
                   enabled=self.progress)
        for r in bar:
            t0 = time.perf_counter()
            model = self.fit(self.x_pool[labelled], labels, derive_seed(cfg.seed, r, 0))
            acc, nll = self._evaluate(model, derive_seed(cfg.seed, r, 1))
            t1 = time.perf_counter()
            rec = Round(len(labelled), acc, nll, t1 - t0, 0.0)
            rounds.append(rec)
            bar.set_postfix(labelled=len(labelled), accuracy=f"{acc:.3f}")
            left = cfg.budget - (len(labelled) - self.initial.numel())
            if left <= 0:
                break
            remaining = unlabelled.nonzero().squeeze(1)  # pool indices still unlabelled
            step = ActiveConfig(**{**asdict(cfg), "batch_size": min(cfg.batch_size, left)})
            chosen = remaining[acquire(model, self.x_pool[remaining], step,
                                       seed=derive_seed(cfg.seed, r, 2), scorer=self.scorer)]
            unlabelled[chosen] = False
            labelled += chosen.tolist()
            labels = torch.cat([labels, self.oracle(chosen)])
            rec.acquired = chosen.tolist()
            rec.score_seconds = time.perf_counter() - t1
        return ActiveResult(cfg, rounds, labelled)
