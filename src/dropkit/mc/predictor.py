"""`MCDropout`: one-call Monte Carlo dropout prediction with uncertainty for any model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from dropkit._validate import check_choice, check_positive_int
from dropkit.errors import DropkitValueError, expected
from dropkit.mc.discover import find_dropout
from dropkit.mc.mode import _check_model, require_dropout
from dropkit.mc.outputs import Output, Selector
from dropkit.mc.prediction import Prediction
from dropkit.mc.sampling import (
    STRATEGIES,
    call,
    check_inputs,
    choose_strategy,
    sample,
)

TASKS = ("classification", "regression")


class MCDropout:
    """Monte Carlo dropout around an already-trained model.

    ``MCDropout(model).predict(x)`` keeps dropout on at inference (and nothing else: BatchNorm
    stays in eval), averages ``samples`` stochastic passes and returns a `Prediction` with the
    mean prediction and its uncertainty. The model is borrowed: its flags, parameters and
    buffers are as they were after every call.

    Args:
        model: a trained ``nn.Module`` with dropout (checked at construction).
        task: ``"classification"`` (outputs are class scores ``(B, C)``) or ``"regression"``
            (outputs are means ``(B, ...)``, or a ``(mean, log_variance)`` pair when
            ``heteroscedastic=True``).
        samples: S, the number of stochastic passes.
        strategy: ``"auto"``, ``"loop"`` or ``"stacked"`` (see `dropkit.sample`).
        max_batch: the most rows a single forward pass may take.
        from_logits: classification outputs are logits (True, default) or probabilities.
        tau: homoscedastic noise precision for regression (aleatoric variance ``1/tau``).
        heteroscedastic: the regression model returns ``(mean, log_var)``.
        output: selector for the model's output (see `dropkit.mc.outputs.select_output`).
        keep_samples: keep the raw samples in the prediction.
        seed: seeds the dropout masks; successive calls continue the same stream.
        progress: show a progress bar in `predict_loader`.
    """

    def __init__(
        self,
        model: nn.Module,
        task: str = "classification",
        samples: int = 30,
        *,
        strategy: str = "auto",
        max_batch: int | None = None,
        from_logits: bool = True,
        tau: float | None = None,
        heteroscedastic: bool = False,
        output: Selector = None,
        keep_samples: bool = True,
        seed: int | None = None,
        progress: bool = True,
    ) -> None:
        self.model = _check_model(model)
        self.task = check_choice("task", task, TASKS)
        self.samples = check_positive_int("samples", samples)
        self.strategy = check_choice("strategy", strategy, STRATEGIES)
        self.max_batch = None if max_batch is None else check_positive_int("max_batch",
                                                                           max_batch)
        self.from_logits = bool(from_logits)
        if tau is not None and not (isinstance(tau, (int, float)) and tau > 0):
            raise DropkitValueError(expected("tau", "a positive float (noise precision)", tau))
        if tau is not None and heteroscedastic:
            raise DropkitValueError(expected("tau", "None when heteroscedastic=True (the model "
                                             "predicts its own variance)", tau))
        self.tau = None if tau is None else float(tau)
        self.heteroscedastic = bool(heteroscedastic)
        self.output = output
        self.keep_samples = bool(keep_samples)
        self.progress = progress
        self.generator = None if seed is None else torch.Generator().manual_seed(
            check_positive_int("seed", seed, minimum=0))
        require_dropout(find_dropout(self.model))

    def _build(self, out: Output, strategy: str, reason: str) -> Prediction:
        if self.task == "classification":
            if isinstance(out, tuple) or out.dim() != 3:
                shape = [tuple(t.shape) for t in out] if isinstance(out, tuple) else tuple(
                    out.shape)
                raise DropkitValueError(expected(
                    "model", "class scores shaped (B, C) for task='classification'",
                    f"outputs of shape {shape} per pass"))
            return Prediction.classification(out, from_logits=self.from_logits,
                                             keep=self.keep_samples, strategy=strategy,
                                             reason=reason)
        if self.heteroscedastic:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise DropkitValueError(expected(
                    "model", "a (mean, log_var) pair with heteroscedastic=True",
                    "a single tensor" if not isinstance(out, tuple) else f"{len(out)} tensors"))
            means, log_var = out
        elif isinstance(out, tuple):
            raise DropkitValueError(expected(
                "model", "a single mean tensor for regression (use heteroscedastic=True for "
                "a (mean, log_var) pair, or output= to pick one)", f"{len(out)} tensors"))
        else:
            means, log_var = out, None
        return Prediction.regression(means, log_var=log_var, tau=self.tau,
                                     keep=self.keep_samples, strategy=strategy, reason=reason)

    def predict(self, x: Any) -> Prediction:
        """MC dropout prediction for one batch ``x`` (``(B, ...)`` or a tuple of tensors)."""
        x = check_inputs(x)
        strategy, reason = choose_strategy(self.strategy, x)
        out = sample(self.model, x, self.samples, strategy=strategy, max_batch=self.max_batch,
                     output=self.output, generator=self.generator)
        return self._build(out, strategy, reason)

    def predict_loader(self, loader: Iterable[Any]) -> Prediction:
        """Predict every batch of ``loader`` and join the results along B.

        Each item is a batch, or an ``(inputs, targets, ...)`` tuple/list whose first element
        is the input (targets are ignored).
        """
        parts = []
        total = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
        for item in tqdm(loader, total=total, disable=not self.progress, desc="MC dropout",
                         unit="batch"):
            x = item[0] if isinstance(item, (tuple, list)) else item
            parts.append(self.predict(x))
        if not parts:
            raise DropkitValueError(expected("loader", "at least one batch", "an empty loader"))
        return Prediction.concatenate(parts)

    def deterministic(self, x: Any) -> Prediction:
        """The weight-scaled prediction: one pass with every module in eval (dropout off).

        Returned as a one-sample `Prediction`, so its ``mean`` compares directly with
        `predict`'s (its mutual information is 0 by construction).
        """
        x = check_inputs(x)
        saved = [(m, m.training) for m in self.model.modules()]
        try:
            self.model.eval()  # every flag is restored below: the user's model is borrowed
            with torch.inference_mode():
                out = call(self.model, x, self.output)
        finally:
            for m, flag in saved:
                m.training = flag
        out = tuple(t.unsqueeze(0) for t in out) if isinstance(out, tuple) else out.unsqueeze(0)
        return self._build(out, "deterministic", "one pass with dropout off (weight scaling)")

    def __repr__(self) -> str:
        return (f"MCDropout(task={self.task!r}, samples={self.samples}, "
                f"strategy={self.strategy!r}, max_batch={self.max_batch})")


