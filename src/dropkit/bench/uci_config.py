"""Settings of the UCI MC-dropout benchmark, and the published numbers it is compared with.

The defaults are the 2018 grid-search protocol of Gal & Ghahramani's public code
(``yaringal/DropoutUncertaintyExps``: ``experiment.py`` and ``net/net.py``, run with one hidden
layer and ``--epochx 100``). ``None`` means "read it from the data set's files".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from dropkit._validate import check_choice, check_positive_int, check_probability
from dropkit.errors import DropkitValueError, expected

__all__ = ["BACKENDS", "PUBLISHED_2016", "PUBLISHED_2018", "PUBLISHED_SOURCES", "UCIConfig"]

BACKENDS = ("auto", "native", "torch")
"""``native``: the fused C kernels of ``uci_native.c`` (compiled on first use; an error if that
fails); ``torch``: torch ops only; ``auto``: native where it compiles, else torch."""


@dataclass(frozen=True)
class UCIConfig:
    """One run of the benchmark; every field is written into the results file.

    Network: Dropout(p) -> Linear(D, H) -> ReLU -> Dropout(p) -> Linear(H, 1), Glorot-uniform
    weights and zero biases (the Keras defaults of the original), trained with Adam on the
    mean squared error of z-scored y plus ``reg * (|W1|^2 + |W2|^2)`` (Keras ``l2(reg)``:
    weights only) with ``reg = lengthscale^2 (1 - p) / (2 N tau)``, N the training rows.
    """

    epoch_multiplier: int = 100
    """Epochs = ``n_epochs.txt`` x this (40 x 100 = 4000)."""
    epochs: int | None = None
    """Overrides the number of epochs (quick runs); ``None`` follows the protocol."""
    n_splits: int | None = None
    """Use the first ``n_splits`` splits; ``None``: all (20)."""
    n_hidden: int | None = None
    dropout_rates: tuple[float, ...] | None = None
    tau_values: tuple[float, ...] | None = None
    train_fraction: float = 0.8
    """First ``int(train_fraction * N)`` training rows (file order) train; the rest validate."""
    lengthscale: float = 1e-2
    batch_size: int = 128
    lr: float = 1e-3
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    mc_samples: int = 10_000
    """T, the MC dropout passes for validation and test."""
    mc_chunk_elements: int = 1 << 23
    """Memory budget of one MC chunk, in hidden activations (passes x networks x rows x H)."""
    seed: int = 0
    splits_per_batch: int | None = None
    """Train this many splits' networks at once (``None``: all). Group g of splits uses seeds
    ``seed + 1000 g`` and ``+ 1000 g + 1``, so this changes the numbers: it is part of the
    result, not just of how it is computed."""
    backend: str = "auto"
    """One of ``BACKENDS``; both backends give the same networks up to rounding."""

    def __post_init__(self) -> None:
        check_choice("backend", self.backend, BACKENDS)
        check_positive_int("epoch_multiplier", self.epoch_multiplier)
        if self.epochs is not None:
            check_positive_int("epochs", self.epochs)
        if self.n_splits is not None:
            check_positive_int("n_splits", self.n_splits)
        if self.n_hidden is not None:
            check_positive_int("n_hidden", self.n_hidden)
        if self.splits_per_batch is not None:
            check_positive_int("splits_per_batch", self.splits_per_batch)
        check_positive_int("seed", self.seed, minimum=0)
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("mc_samples", self.mc_samples)
        check_positive_int("mc_chunk_elements", self.mc_chunk_elements)
        if not 0.0 < self.train_fraction < 1.0:
            raise DropkitValueError(expected("train_fraction", "a float in (0, 1)",
                                             self.train_fraction))
        for name in ("lengthscale", "lr"):
            if not getattr(self, name) > 0:
                raise DropkitValueError(expected(name, "a positive float", getattr(self, name)))
        for p in self.dropout_rates or ():
            check_probability("dropout_rates", p)
        for tau in self.tau_values or ():
            if not 0 < tau < math.inf:
                raise DropkitValueError(expected("tau_values", "positive finite floats", tau))

    @classmethod
    def quick(cls, **overrides: object) -> UCIConfig:
        """A few epochs, two splits, 200 MC passes: seconds, for tests and smoke runs."""
        fields: dict[str, Any] = {"epochs": 5, "n_splits": 2, "mc_samples": 200}
        fields.update(overrides)
        return cls(**fields)

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    def total_epochs(self, n_epochs_file: int) -> int:
        return self.epochs if self.epochs is not None else n_epochs_file * self.epoch_multiplier


PUBLISHED_SOURCES = {
    "2018": (
        "Gal & Ghahramani, 'Dropout as a Bayesian Approximation', updated results of "
        "the public code yaringal/DropoutUncertaintyExps (grid search over p x tau, 4000 "
        "epochs, 10,000 MC passes; 1 hidden layer of 50 units); unrounded values from its "
        "results logs as listed in ../shared/uci/README.md"
    ),
    "2016": (
        "Gal & Ghahramani, ICML 2016, Table 1 (400 epochs, one tau from Bayesian "
        "optimisation shared by all splits)"
    ),
}

# dataset -> (rmse_mean, rmse_se, ll_mean, ll_se); source: PUBLISHED_SOURCES["2018"].
PUBLISHED_2018: dict[str, tuple[float, float, float, float]] = {
    "bostonHousing": (2.903623, 0.176840, -2.401936, 0.041702),
    "energy": (0.538867, 0.013524, -1.211517, 0.005319),
    "naval-propulsion-plant": (0.000743, 0.000046, 4.449543, 0.002160),
    "power-plant": (4.014226, 0.036771, -2.807789, 0.008626),
    "wine-quality-red": (0.621809, 0.007974, -0.928090, 0.012738),
}

# dataset -> (rmse_mean, ll_mean); source: PUBLISHED_SOURCES["2016"].
PUBLISHED_2016: dict[str, tuple[float, float]] = {
    "bostonHousing": (2.97, -2.46),
    "energy": (1.66, -1.99),
    "naval-propulsion-plant": (0.01, 3.80),
    "power-plant": (4.02, -2.80),
    "wine-quality-red": (0.62, -0.93),
}
