"""Checkpoints of ``dropkit bench uci``: one file per data set with the groups of splits that
finished, so ``--resume`` continues an interrupted run.

A checkpoint records what it is the partial result *of*: the config (which includes
``splits_per_batch``, so the seeds), the dtype, and a sha256 of the data set's numbers and
splits. It is used only for exactly that run; the groups it holds are then the ones a straight
run would compute (the seeds depend on the group, not on what ran before), so the resumed
table is the same bit for bit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dropkit.bench.uci_config import UCIConfig
from dropkit.bench.uci_protocol import UCIResult
from dropkit.datasets.uci import UCIDataset
from dropkit.errors import DropkitValueError
from dropkit.experiments import record

__all__ = ["CHECKPOINT_DIR", "Checkpoints", "data_digest"]

CHECKPOINT_DIR = "uci.checkpoint"
_KIND = "dropkit bench uci checkpoint"


def data_digest(dataset: UCIDataset) -> str:
    """sha256 of the numbers a run reads: X, y and every split's row indices."""
    h = hashlib.sha256()
    for array in (dataset.X, dataset.y, *(a for pair in dataset.splits for a in pair)):
        a = np.ascontiguousarray(array)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class Checkpoints:
    """The checkpoint folder of one run (``config`` and ``dtype``)."""

    def __init__(self, folder: Path, config: UCIConfig, dtype: torch.dtype) -> None:
        self.folder, self.config, self.dtype = folder, config, dtype

    def _fingerprint(self, dataset: UCIDataset) -> dict[str, Any]:
        return {"dataset": dataset.name, "config": self.config.to_dict(),
                "dtype": str(self.dtype), "data_sha256": data_digest(dataset)}

    def path(self, dataset: UCIDataset) -> Path:
        return self.folder / f"{dataset.name}.json"  # the name is a plain name (check_name)

    def save(self, dataset: UCIDataset, result: UCIResult) -> None:
        """Replace the data set's checkpoint atomically with ``result`` (its finished groups)."""
        self.folder.mkdir(exist_ok=True)
        record.write_json(self.path(dataset), {"kind": _KIND,
                                               "fingerprint": self._fingerprint(dataset),
                                               "result": result.to_dict()})

    def clear(self, dataset: UCIDataset) -> None:
        """Forget the data set's checkpoint (a run without ``--resume`` starts afresh)."""
        self.path(dataset).unlink(missing_ok=True)

    def load(self, dataset: UCIDataset) -> UCIResult | None:
        """The partial result of exactly this run, ``None`` if there is none; a checkpoint of
        another run (settings, dtype or data) or a damaged one is an error naming the file."""
        path = self.path(dataset)
        if not path.is_file():
            return None
        fresh = "; rerun without --resume to start afresh"
        try:
            document = json.loads(path.read_text())
            if document.get("kind") != _KIND:
                raise ValueError("not a checkpoint of dropkit bench uci")
            saved = document["fingerprint"]
            result = UCIResult.from_dict(document["result"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise DropkitValueError(f"{path}: unreadable checkpoint ({err}){fresh}.") from None
        now = self._fingerprint(dataset)
        changed = [k for k in now if saved.get(k) != now[k]]
        if changed:
            what = ", ".join(changed)
            if "config" in changed and isinstance(saved.get("config"), dict):
                what = ", ".join(f"{k}={saved['config'].get(k)!r} (now {v!r})"
                                 for k, v in now["config"].items()
                                 if saved["config"].get(k) != v)
            raise DropkitValueError(f"{path}: --resume needs the settings and data of the "
                                    f"interrupted run, but these differ: {what}{fresh}.")
        return result
