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
from dropkit.mc.engine import session
from dropkit.mc.mode import _check_model, require_dropout
from dropkit.mc.outputs import Output, Selector
from dropkit.mc.prediction import Prediction
from dropkit.mc.sampling import STRATEGIES, call, check_inputs
from dropkit.mc.streaming import ClassificationStream, RegressionStream

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
        samples: S, the number of stochastic passes, or ``"auto"``: sample in chunks of
            ``chunk`` until the standard error of every predictive probability (regression: of
            the predictive mean) and of the mutual information is at most ``tol``, or
            ``max_samples`` is reached; the S used is in ``Prediction.n_samples`` (and
            ``samples_per_batch`` after `predict_loader`).
        strategy: ``"auto"``, ``"loop"``, ``"stacked"`` or ``"cached"`` (see `dropkit.sample`).
        max_batch: the most rows a single forward pass may take, in every strategy.
        from_logits: classification outputs are logits (True, default) or probabilities.
        tau: homoscedastic noise precision for regression (aleatoric variance ``1/tau``).
        heteroscedastic: the regression model returns ``(mean, log_var)``.
        output: selector for the model's output (see `dropkit.mc.outputs.select_output`).
        keep_samples: keep the raw samples in the prediction. With False the measures are
            accumulated chunk by chunk (`dropkit.mc.streaming`), so memory is that of one chunk
            whatever S; the results equal the kept-samples path to float tolerance. For the
            regression log-likelihood then pass the targets: ``predict(x, target=y)`` stores
            ``Prediction.target_log_likelihood`` (and ``log_likelihood(y)`` returns it).
        tol, max_samples, chunk: the stopping rule of ``samples="auto"`` and the number of
            samples drawn per chunk when streaming.
        split_at: module path to cache up to with hooks (see `dropkit.sample`).
        seed: seeds the dropout masks; successive calls continue the same stream.
        progress: show a progress bar in `predict_loader`.
    """

    def __init__(
        self,
        model: nn.Module,
        task: str = "classification",
        samples: int | str = 30,
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
        tol: float = 0.01,
        max_samples: int = 1000,
        chunk: int = 32,
        split_at: str | None = None,
    ) -> None:
        self.model = _check_model(model)
        self.task = check_choice("task", task, TASKS)
        if isinstance(samples, str) and samples != "auto":
            raise DropkitValueError(expected("samples", "an integer >= 1 or 'auto'",
                                             repr(samples)))
        self.samples: int | str = ("auto" if samples == "auto"
                                   else check_positive_int("samples", samples))
        if not (isinstance(tol, (int, float)) and not isinstance(tol, bool) and tol > 0):
            raise DropkitValueError(expected("tol", "a positive float (standard error)", tol))
        self.tol = float(tol)
        self.max_samples = check_positive_int("max_samples", max_samples)
        self.chunk = check_positive_int("chunk", chunk)
        if split_at is not None and not isinstance(split_at, str):
            raise DropkitValueError(expected("split_at", "None or a module path (str)",
                                             repr(split_at)))
        self.split_at = split_at
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
        samples, log_var = self._split(out)
        if self.task == "classification":
            return Prediction.classification(samples, from_logits=self.from_logits,
                                             keep=self.keep_samples, strategy=strategy,
                                             reason=reason)
        return Prediction.regression(samples, log_var=log_var, tau=self.tau,
                                     keep=self.keep_samples, strategy=strategy, reason=reason)

    def _check_target(self, target: Any, x: Any) -> torch.Tensor | None:
        if target is None:
            return None
        if self.task != "regression" or (self.tau is None and not self.heteroscedastic):
            raise DropkitValueError(expected(
                "target", "None unless task='regression' with a noise model (tau= or "
                "heteroscedastic=True)", "a target"))
        if not isinstance(target, torch.Tensor) or target.shape[:1] != (
                x[0] if isinstance(x, tuple) else x).shape[:1]:
            raise DropkitValueError(expected("target", "a tensor with one row per input",
                                             getattr(target, "shape", type(target).__name__)))
        return target

    def _split(self, out: Output) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Check a chunk of outputs and return (samples, log_var)."""
        if self.task == "classification":
            if isinstance(out, tuple) or out.dim() != 3:
                shape = [tuple(t.shape) for t in out] if isinstance(out, tuple) else tuple(
                    out.shape)
                raise DropkitValueError(expected(
                    "model", "class scores shaped (B, C) for task='classification'",
                    f"outputs of shape {shape} per pass"))
            return out, None
        if self.heteroscedastic:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise DropkitValueError(expected(
                    "model", "a (mean, log_var) pair with heteroscedastic=True",
                    "a single tensor" if not isinstance(out, tuple) else f"{len(out)} tensors"))
            return out[0], out[1]
        if isinstance(out, tuple):
            raise DropkitValueError(expected(
                "model", "a single mean tensor for regression (use heteroscedastic=True for "
                "a (mean, log_var) pair, or output= to pick one)", f"{len(out)} tensors"))
        return out, None

    def predict(self, x: Any, target: torch.Tensor | None = None) -> Prediction:
        """MC dropout prediction for one batch ``x`` (``(B, ...)`` or a tuple of tensors).

        ``target`` (regression with ``tau`` or a heteroscedastic head): also compute the
        per-point mixture log-likelihood of these targets (``target_log_likelihood``), which
        works with ``keep_samples=False``.
        """
        x = check_inputs(x)
        target = self._check_target(target, x)
        budget = self.max_samples if self.samples == "auto" else int(self.samples)
        with session(self.model, x, budget, strategy=self.strategy, max_batch=self.max_batch,
                     output=self.output, generator=self.generator,
                     split_at=self.split_at) as sampler:
            if self.keep_samples and self.samples != "auto":
                pred = self._build(sampler.draw(budget), sampler.strategy, sampler.reason)
                if target is not None:
                    pred.target_log_likelihood = pred.log_likelihood(target)
                    pred.likelihood_target = target
                return pred
            return self._stream(sampler, budget, target)

    def _stream(self, sampler: Any, budget: int, target: torch.Tensor | None) -> Prediction:
        auto = self.samples == "auto"
        stream: ClassificationStream | RegressionStream
        if self.task == "classification":
            stream = ClassificationStream(from_logits=self.from_logits)
        else:
            stream = RegressionStream(tau=self.tau, target=target)
        kept: list[Output] = []
        drawn = 0
        while drawn < budget:
            out = sampler.draw(min(self.chunk, budget - drawn))
            values, log_var = self._split(out)
            if isinstance(stream, ClassificationStream):
                stream.update(values)
            else:
                stream.update(values, log_var)
            if self.keep_samples:
                kept.append(out)
            drawn += values.shape[0]
            if auto and drawn >= 2 * min(self.chunk, budget) and self._precise(stream):
                break
        reason = sampler.reason + (f"; samples='auto' stopped at S={drawn} (tol={self.tol}, "
                                   f"max_samples={self.max_samples})" if auto else "")
        measures = stream.measures()
        pred = Prediction.from_measures(self.task, measures, n_samples=drawn,
                                        strategy=sampler.strategy, reason=reason, tau=self.tau,
                                        target=target)
        if self.keep_samples:
            values, log_var = self._split(_cat(kept))
            pred.samples = values
            pred.log_var_samples = log_var
        return pred

    def _precise(self, stream: ClassificationStream | RegressionStream) -> bool:
        if float(stream.mean_se().max()) > self.tol:
            return False
        return not (isinstance(stream, ClassificationStream)
                    and float(stream.mi_se().max()) > self.tol)

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
        return (f"MCDropout(task={self.task!r}, samples={self.samples!r}, "
                f"strategy={self.strategy!r}, max_batch={self.max_batch})")




def _cat(parts: list[Output]) -> Output:
    if isinstance(parts[0], tuple):
        return tuple(torch.cat([p[i] for p in parts], 0) for i in range(len(parts[0])))
    return torch.cat(parts, 0)  # type: ignore[arg-type]
