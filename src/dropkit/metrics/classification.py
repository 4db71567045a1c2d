"""Proper scoring rules and accuracy for class predictions ``(B, C)`` against labels ``(B,)``.

Each metric is a pure function here and a streaming ``torchmetrics.Metric`` in ``streaming.py``,
both over the same private per-row function below.
"""

from __future__ import annotations

import torch

from dropkit.metrics._inputs import ArrayLike, class_inputs

__all__ = ["accuracy", "negative_log_likelihood", "brier_score", "NLL_EPS"]

#: Probabilities given with ``from_logits=False`` are clamped below at this value before the
#: log, so a confidently wrong prediction costs at most ``-log(1e-12) ~= 27.6`` nats instead of
#: infinity. From logits no clamp is needed (``log_softmax`` is finite).
NLL_EPS = 1e-12


def _correct_rows(preds: ArrayLike, target: ArrayLike, from_logits: bool) -> torch.Tensor:
    probs, _, target = class_inputs(preds, target, from_logits)
    return (probs.argmax(dim=-1) == target).double()  # (B,)


def _nll_rows(preds: ArrayLike, target: ArrayLike, from_logits: bool) -> torch.Tensor:
    probs, log_probs, target = class_inputs(preds, target, from_logits)
    if from_logits:
        picked = log_probs.gather(1, target[:, None])
    else:
        picked = probs.gather(1, target[:, None]).clamp_min(NLL_EPS).log()
    return -picked.squeeze(1).double()  # (B,)


def _brier_rows(preds: ArrayLike, target: ArrayLike, from_logits: bool) -> torch.Tensor:
    probs, _, target = class_inputs(preds, target, from_logits)
    onehot = torch.nn.functional.one_hot(target, num_classes=probs.shape[1]).to(probs.dtype)
    return ((probs - onehot) ** 2).sum(dim=-1).double()  # (B,)


def accuracy(preds: ArrayLike, target: ArrayLike, *, from_logits: bool) -> float:
    r"""Fraction of rows whose arg-max class equals the target.

    .. math:: \mathrm{acc} = \frac{1}{B}\sum_b [\arg\max_c p_{b,c} = y_b]

    Ties in the arg-max go to the lowest class index.

    Shape:
        - preds: ``(B, C)`` logits (``from_logits=True``) or probabilities.
        - target: ``(B,)`` integer class indices in ``[0, C)``.
    """
    return float(_correct_rows(preds, target, from_logits).mean())


def negative_log_likelihood(preds: ArrayLike, target: ArrayLike, *, from_logits: bool) -> float:
    r"""Mean negative log-probability of the target class (cross-entropy, in nats).

    .. math:: \mathrm{NLL} = -\frac{1}{B}\sum_b \log p_{b, y_b}

    From probabilities, ``p`` is clamped below at :data:`NLL_EPS` (``1e-12``).

    Shape:
        - preds: ``(B, C)`` logits (``from_logits=True``) or probabilities.
        - target: ``(B,)`` integer class indices in ``[0, C)``.
    """
    return float(_nll_rows(preds, target, from_logits).mean())


def brier_score(preds: ArrayLike, target: ArrayLike, *, from_logits: bool) -> float:
    r"""Multiclass Brier score: mean squared distance to the one-hot target, summed over classes.

    .. math:: \mathrm{BS} = \frac{1}{B}\sum_b \sum_c (p_{b,c} - [y_b = c])^2

    It lies in ``[0, 2]`` (Brier's original definition). For two classes it is twice
    scikit-learn's binary ``brier_score_loss(y, p_1)``, which scores only the positive class.

    Shape:
        - preds: ``(B, C)`` logits (``from_logits=True``) or probabilities.
        - target: ``(B,)`` integer class indices in ``[0, C)``.
    """
    return float(_brier_rows(preds, target, from_logits).mean())
