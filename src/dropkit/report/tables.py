"""Tables of a claim's numbers: the nested ``numbers`` dict of ``results.json`` split into
per-seed rows (one column per seed) and everything else (quantity, value).

The lab's convention (not a schema): a value measured once per seed is a list whose first
dimension is the seeds, in the order of the claim's ``seeds``. `per_seed_rows` finds, anywhere
in the nest:

* a list of ``n_seeds`` numbers: one row;
* a list of ``n_seeds`` equal-length lists of numbers (per seed, a value per grid point):
  one row per grid point, ``quantity [j]``;
* a list of ``n_seeds`` dicts (``per_seed``: one record per seed): their numeric leaves
  present for every seed, one row each, ``quantity / key``.

With a single seed a list of one number is ambiguous and stays in the other table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["flatten", "mean", "per_seed_rows", "split_numbers"]

Row = tuple[str, list[float]]


def flatten(numbers: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Leaves of a nested dict as ``("a / b / c", value)`` rows, in insertion order."""
    rows: list[tuple[str, Any]] = []
    for key, value in numbers.items():
        path = f"{prefix} / {key}" if prefix else str(key)
        if isinstance(value, Mapping):
            rows.extend(flatten(value, path))
        else:
            rows.append((path, value))
    return rows


def _is_number(v: Any) -> bool:
    return (v is None or isinstance(v, (int, float))) and not isinstance(v, bool)


def _numbers(values: Sequence[Any]) -> bool:
    return bool(values) and all(_is_number(v) for v in values) and any(
        v is not None for v in values)


def _as_rows(path: str, value: Any, n: int) -> list[Row] | None:
    """The per-seed rows of one leaf, or None when it is not per seed."""
    if not isinstance(value, list) or len(value) != n or n < 2:
        return None
    if _numbers(value):
        return [(path, list(value))]
    if all(isinstance(v, list) for v in value):
        k = len(value[0])
        if k and all(len(v) == k and _numbers(v) for v in value):
            return [(f"{path} [{j}]", [v[j] for v in value]) for j in range(k)]
        return None
    if all(isinstance(v, Mapping) for v in value):
        leaves = [dict(flatten(v)) for v in value]
        keys = [key for key, x in flatten(value[0]) if _is_number(x)]
        keys = [key for key in keys if all(key in d and _is_number(d[key]) for d in leaves)]
        return [(f"{path} / {key}", [d[key] for d in leaves]) for key in keys] or None
    return None


def split_numbers(numbers: Mapping[str, Any], n_seeds: int
                  ) -> tuple[list[Row], list[tuple[str, Any]]]:
    """``(per_seed_rows, other_rows)`` of ``numbers`` for a claim run on ``n_seeds`` seeds."""
    per_seed: list[Row] = []
    other: list[tuple[str, Any]] = []
    for path, value in flatten(numbers):
        rows = _as_rows(path, value, n_seeds)
        if rows is None:
            other.append((path, value))
        else:
            per_seed.extend(rows)
    return per_seed, other


def per_seed_rows(numbers: Mapping[str, Any], n_seeds: int) -> list[Row]:
    """The rows of `split_numbers` measured once per seed."""
    return split_numbers(numbers, n_seeds)[0]


def mean(values: Sequence[float | None]) -> float | None:
    """The mean over seeds; None when any value is missing or not finite (no silent NaN)."""
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return None
    return sum(float(v) for v in values if v is not None) / len(values)
