"""Acquisition scores from MC samples ``(S, B, C)``: one score per pool example, higher first.

Each function is a thin layer over `dropkit.uncertainty` (one formula, one home) and returns
``(B,)``; `from_prediction` gives the same scores from a streamed `Prediction` (no samples
kept), so the pool never needs its samples.

- ``bald``: mutual information between label and weights (Houlsby et al. 2011).
- ``max_entropy``: entropy of the mean prediction.
- ``variation_ratio``: 1 - share of samples voting for the modal class (Freeman 1965).
- ``mean_std``: per-class standard deviation of the probabilities, averaged over classes
  (Kampffmeyer et al. 2016).
- ``margin``: minus the gap between the two largest mean probabilities (small gap, high score).
- ``random``: uniform noise from ``generator`` (the baseline).
"""

from __future__ import annotations

import torch

from dropkit import uncertainty as U
from dropkit._validate import check_choice
from dropkit.errors import DropkitValueError, expected
from dropkit.mc.prediction import ClassificationPrediction, Prediction

#: Scores computable from streamed measures (BatchBALD is a batch method: see `batchbald`).
MEASURES = ("bald", "max_entropy", "variation_ratio", "mean_std", "margin", "random")


def bald(samples: torch.Tensor, *, from_logits: bool) -> torch.Tensor:
    r"""BALD: :math:`\mathbb{H}[\bar p] - \mathbb{E}_s \mathbb{H}[p_s]`, ``(S, B, C) -> (B,)``."""
    return U.mutual_information(samples, from_logits=from_logits)


def max_entropy(samples: torch.Tensor, *, from_logits: bool) -> torch.Tensor:
    r"""Predictive entropy :math:`\mathbb{H}[\bar p]`, ``(S, B, C) -> (B,)``."""
    return U.predictive_entropy(samples, from_logits=from_logits)


def variation_ratio(samples: torch.Tensor, *, from_logits: bool) -> torch.Tensor:
    """1 - (votes of the modal class) / S, ``(S, B, C) -> (B,)``."""
    return U.variation_ratio(samples, from_logits=from_logits)


def mean_std(samples: torch.Tensor, *, from_logits: bool) -> torch.Tensor:
    """Population std over samples of each class probability, mean over classes ``(B,)``."""
    return U.class_std(samples, from_logits=from_logits).mean(dim=-1)


def _margin_of_mean(mean: torch.Tensor) -> torch.Tensor:
    if mean.shape[-1] < 2:
        raise DropkitValueError(expected("samples", "at least 2 classes for margin",
                                         f"{mean.shape[-1]} class"))
    top2 = mean.topk(2, dim=-1).values  # (B, 2)
    return top2[:, 1] - top2[:, 0]


def margin(samples: torch.Tensor, *, from_logits: bool) -> torch.Tensor:
    """Minus the gap between the two most probable classes of the mean prediction ``(B,)``."""
    return _margin_of_mean(U.predictive_probs(samples, from_logits=from_logits))


def random(samples: torch.Tensor, *, from_logits: bool,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform scores in [0, 1) from ``generator`` (samples only give B): the baseline."""
    del from_logits  # the same signature as the other measures
    return torch.rand(samples.shape[1], generator=generator, dtype=torch.float64)


def score(samples: torch.Tensor, measure: str, *, from_logits: bool,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """The named measure of ``samples`` ``(S, B, C)``, as ``(B,)``."""
    measure = check_choice("measure", measure, MEASURES)
    if measure == "random":
        return random(samples, from_logits=from_logits, generator=generator)
    return _FUNCTIONS[measure](samples, from_logits=from_logits)


def from_prediction(pred: Prediction, measure: str, *,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """The named measure from a classification `Prediction` (streamed or not), ``(B,)``.

    Equals `score` on the prediction's samples (to float tolerance when it was streamed).
    """
    measure = check_choice("measure", measure, MEASURES)
    if not isinstance(pred, ClassificationPrediction):
        raise DropkitValueError(expected("pred", "a classification Prediction",
                                         f"a {pred.task} Prediction"))
    if measure == "random":
        return torch.rand(pred.mean.shape[0], generator=generator, dtype=torch.float64)
    if measure == "margin":
        return _margin_of_mean(pred.mean)
    if measure == "mean_std":
        return pred.class_std.mean(dim=-1)
    field = {"bald": "mutual_information", "max_entropy": "predictive_entropy",
             "variation_ratio": "variation_ratio"}[measure]
    return getattr(pred, field)


_FUNCTIONS = {"bald": bald, "max_entropy": max_entropy, "variation_ratio": variation_ratio,
              "mean_std": mean_std, "margin": margin}
