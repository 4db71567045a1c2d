"""Tiny synthetic data sets in the UCI split layout, written by the tests (no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_uci_layout(root: Path, name: str = "toy", *, rows: int = 40, n_splits: int = 3,
                     test_rows: int = 10, rates: str = "0.05 0.1\n", taus: str = "1.0\n",
                     seed: int = 0) -> Path:
    """``<root>/<name>/data/`` with y = x0 - 2 x1 + noise and ``n_splits`` random splits;
    returns the data folder (tests then spoil one file)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 2))
    y = X[:, 0] - 2 * X[:, 1] + 0.1 * rng.normal(size=rows)
    folder = root / name / "data"
    folder.mkdir(parents=True)
    np.savetxt(folder / "data.txt", np.column_stack([X, y]))
    (folder / "index_features.txt").write_text("0\n1\n")
    (folder / "index_target.txt").write_text("2\n")
    (folder / "n_splits.txt").write_text(f"{n_splits}\n")
    for i in range(n_splits):
        order = rng.permutation(rows)
        np.savetxt(folder / f"index_train_{i}.txt", order[test_rows:], fmt="%d")
        np.savetxt(folder / f"index_test_{i}.txt", order[:test_rows], fmt="%d")
    (folder / "n_hidden.txt").write_text("6\n")
    (folder / "n_epochs.txt").write_text("2\n")
    (folder / "dropout_rates.txt").write_text(rates)
    (folder / "tau_values.txt").write_text(taus)
    return folder
