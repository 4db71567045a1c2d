"""`MCDropout`: one-call Monte Carlo dropout prediction with uncertainty for any model."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Generic, Literal, TypeVar, cast, overload

import torch
from torch import nn

from dropkit._progress import progress_bar
from dropkit._validate import check_choice, check_positive_int
from dropkit.errors import DropkitTypeError, DropkitValueError, expected
from dropkit.inspection.borrow import check_model
from dropkit.inspection.discover import find_dropout, require_fired
from dropkit.inspection.shadow import set_flags, shadow
from dropkit.mc.inputs import ModelInputs, check_inputs
from dropkit.mc.memory import check_kept_samples
from dropkit.mc.outputs import Output, Selector, check_output_finite, select_samples
from dropkit.mc.plan import Plan, clear_plans
from dropkit.mc.prediction import ClassificationPrediction, Prediction, RegressionPrediction
from dropkit.mc.sampler import Sampler
from dropkit.mc.sampling import check_flag, check_generator, check_options, session
from dropkit.measures import ClassificationStream, RegressionStream

TASKS = ("classification", "regression")
P = TypeVar("P", bound=Prediction)


def _check_tau(tau: object) -> float | None:
    if tau is None:
        return None
    if isinstance(tau, bool) or not isinstance(tau, (int, float)):
        raise DropkitTypeError(expected("tau", "None or a positive float (noise precision)",
                                        repr(tau)))
    if not (math.isfinite(tau) and tau > 0):
        raise DropkitValueError(expected("tau", "a positive finite float (noise precision)",
                                         tau))
    return float(tau)


def _check_positive_float(name: str, value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value > 0):
        raise DropkitValueError(expected(name, what, repr(value)))
    return float(value)


class MCDropout(Generic[P]):
    """Monte Carlo dropout around an already-trained model.

    ``MCDropout(model).predict(x)`` keeps dropout on at inference (and nothing else: BatchNorm
    stays in eval), averages ``samples`` stochastic passes and returns a `Prediction` with the
    mean prediction and its uncertainty. The model is borrowed and never switched: sampling
    runs on a private copy of its module tree that shares every parameter and buffer, so one
    `MCDropout` (or one model) may serve several threads at once.

    Args:
        model: a trained ``nn.Module`` with dropout (checked at construction, and checked to
            fire on the first batch).
        task: ``"classification"`` (outputs are class scores ``(B, C)``, or ``(B, T, V)`` per
            token) or ``"regression"`` (outputs are means ``(B, ...)``, or a
            ``(mean, log_variance)`` pair when ``heteroscedastic=True``).
        samples: S, the number of stochastic passes, or ``"auto"``: sample in chunks of
            ``chunk`` until the standard error of every predictive probability (regression: of
            the predictive mean) and of the mutual information is at most ``tol``, or
            ``max_samples`` is reached; the S used is in ``Prediction.n_samples``.
        strategy: ``"auto"``, ``"loop"``, ``"stacked"`` or ``"cached"`` (see `dropkit.sample`).
        max_batch: the most rows a single forward pass may take, in every strategy.
        from_logits: classification outputs are logits (True, default) or probabilities.
        tau: homoscedastic noise precision for regression (aleatoric variance ``1/tau``).
        heteroscedastic: the regression model returns ``(mean, log_var)``.
        output: selector for the model's output (see `dropkit.mc.outputs.select_output`);
            transformers outputs give ``.logits`` by default.
        keep_samples: keep the raw samples in the prediction (refused when they would not fit
            in ``memory_limit``). With False the measures are accumulated chunk by chunk, so
            memory is that of one chunk whatever S. For the regression log-likelihood then pass
            the targets: ``predict(x, target=y)``.
        seed: seeds the dropout masks; successive calls continue the same stream.
        progress: show a progress bar in `predict_loader`.
        tol, max_samples, chunk: the stopping rule of ``samples="auto"`` and the number of
            samples drawn per chunk when streaming.
        split_at: module path to cache up to with hooks (see `dropkit.sample`).
        stochastic_depth: also sample over stochastic depth (see `dropkit.sample`; off by
            default).
        memory_limit: bytes the kept samples may take (None: half of the available memory).

    Attributes:
        plan: the `Plan` of the last call (what was switched, what fired, the strategy and
            why); `clear_plans` forgets every cached plan of the model.

    Type checkers see ``MCDropout(model)`` as ``MCDropout[ClassificationPrediction]`` and
    ``MCDropout(model, task="regression")`` as ``MCDropout[RegressionPrediction]``, so the
    fields of what `predict` returns are known without a cast.
    """

    @overload
    def __init__(self: MCDropout[ClassificationPrediction], model: nn.Module,
                 task: Literal["classification"] = ..., samples: int | str = ..., *,
                 strategy: str = ..., max_batch: int | None = ..., from_logits: bool = ...,
                 tau: float | None = ..., heteroscedastic: bool = ..., output: Selector = ...,
                 keep_samples: bool = ..., seed: int | None = ..., progress: bool = ...,
                 tol: float = ..., max_samples: int = ..., chunk: int = ...,
                 split_at: str | None = ..., stochastic_depth: bool = ...,
                 memory_limit: int | None = ...) -> None: ...

    @overload
    def __init__(self: MCDropout[RegressionPrediction], model: nn.Module,
                 task: Literal["regression"], samples: int | str = ..., *,
                 strategy: str = ..., max_batch: int | None = ..., from_logits: bool = ...,
                 tau: float | None = ..., heteroscedastic: bool = ..., output: Selector = ...,
                 keep_samples: bool = ..., seed: int | None = ..., progress: bool = ...,
                 tol: float = ..., max_samples: int = ..., chunk: int = ...,
                 split_at: str | None = ..., stochastic_depth: bool = ...,
                 memory_limit: int | None = ...) -> None: ...

    @overload
    def __init__(self: MCDropout[Prediction], model: nn.Module, task: str,
                 samples: int | str = ..., *,
                 strategy: str = ..., max_batch: int | None = ..., from_logits: bool = ...,
                 tau: float | None = ..., heteroscedastic: bool = ..., output: Selector = ...,
                 keep_samples: bool = ..., seed: int | None = ..., progress: bool = ...,
                 tol: float = ..., max_samples: int = ..., chunk: int = ...,
                 split_at: str | None = ..., stochastic_depth: bool = ...,
                 memory_limit: int | None = ...) -> None: ...

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
        stochastic_depth: bool = False,
        memory_limit: int | None = None,
    ) -> None:
        self.model = check_model(model)
        self.task = check_choice("task", task, TASKS)
        if isinstance(samples, str) and samples != "auto":
            raise DropkitValueError(expected("samples", "an integer >= 1 or 'auto'",
                                             repr(samples)))
        self.samples: int | str = ("auto" if samples == "auto"
                                   else check_positive_int("samples", samples))
        self.tol = _check_positive_float("tol", tol, "a positive float (standard error)")
        self.max_samples = check_positive_int("max_samples", max_samples)
        self.chunk = check_positive_int("chunk", chunk)
        check_options(strategy=strategy, max_batch=max_batch, split_at=split_at, output=output,
                      stochastic_depth=stochastic_depth)
        self.strategy, self.max_batch, self.split_at = strategy, max_batch, split_at
        self.output = output
        self.stochastic_depth = stochastic_depth
        self.from_logits = check_flag("from_logits", from_logits)
        self.heteroscedastic = check_flag("heteroscedastic", heteroscedastic)
        self.keep_samples = check_flag("keep_samples", keep_samples)
        self.progress = check_flag("progress", progress)
        self.tau = _check_tau(tau)
        if self.tau is not None and self.heteroscedastic:
            raise DropkitValueError(expected("tau", "None when heteroscedastic=True (the model "
                                             "predicts its own variance)", tau))
        if memory_limit is not None:
            check_positive_int("memory_limit", memory_limit)
        self.memory_limit = memory_limit
        self.generator = check_generator(None, seed)
        self.plan: Plan | None = None
        found = find_dropout(self.model, stochastic_depth=stochastic_depth)
        if not found.ambiguous:  # else only running the model can tell (first batch)
            require_fired(found)

    def clear_plans(self) -> None:
        """Forget the cached plans of this model (they rebuild on the next call)."""
        clear_plans(self.model)
        self.plan = None

    def _build(self, out: Output, strategy: str, reason: str,
               mask: torch.Tensor | None = None, target: torch.Tensor | None = None) -> P:
        samples, log_var = self._split(out)
        pred: Prediction
        if self.task == "classification":
            pred = Prediction.classification(samples, from_logits=self.from_logits,
                                             keep=self.keep_samples, strategy=strategy,
                                             reason=reason, mask=mask)
        else:
            pred = Prediction.regression(samples, log_var=log_var, tau=self.tau,
                                         keep=self.keep_samples, strategy=strategy,
                                         reason=reason, target=target)
        return cast(P, pred)  # the task chose P (see the overloads of __init__)

    def _check_target(self, target: Any, x: ModelInputs) -> torch.Tensor | None:
        if target is None:
            return None
        if self.task != "regression" or (self.tau is None and not self.heteroscedastic):
            raise DropkitValueError(expected(
                "target", "None unless task='regression' with a noise model (tau= or "
                "heteroscedastic=True)", "a target"))
        if not isinstance(target, torch.Tensor) or target.dim() == 0 or target.shape[0] != x.b:
            raise DropkitValueError(expected("target", f"a tensor with one row per input "
                                             f"(B={x.b})", getattr(target, "shape",
                                                                   type(target).__name__)))
        return target

    def _split(self, out: Output) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Check a chunk of outputs and return (samples, log_var)."""
        if self.task == "classification":
            if isinstance(out, tuple) or out.dim() not in (3, 4):
                shape = [tuple(t.shape) for t in out] if isinstance(out, tuple) else tuple(
                    out.shape)
                raise DropkitValueError(expected(
                    "model", "class scores shaped (B, C), or (B, T, V) per token, for "
                    "task='classification'", f"outputs of shape {shape} per pass"))
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

    def predict(self, x: Any = None, target: torch.Tensor | None = None,
                **inputs: Any) -> P:
        """MC dropout prediction for one batch.

        ``x`` is a tensor ``(B, ...)``, a tuple of tensors (positional arguments) or a mapping
        of keyword inputs (a dict, transformers' ``BatchEncoding``); keyword inputs may also be
        passed directly: ``predict(**enc)``. ``target`` (regression with ``tau`` or a
        heteroscedastic head): also compute the per-point mixture log-likelihood of these
        targets (``target_log_likelihood``), which works with ``keep_samples=False``.
        """
        batch = check_inputs(x, inputs)
        target = self._check_target(target, batch)
        budget = self.max_samples if self.samples == "auto" else int(self.samples)
        with session(self.model, batch, budget, strategy=self.strategy,
                     max_batch=self.max_batch, output=self.output, generator=self.generator,
                     split_at=self.split_at,
                     stochastic_depth=self.stochastic_depth) as (plan, sampler):
            self.plan = plan
            if self.keep_samples:
                check_kept_samples(budget, plan.row_bytes, batch.b, batch.device,
                                   self.memory_limit)
            mask = self._token_mask(batch, plan)
            if self.keep_samples and self.samples != "auto":
                return self._build(sampler.draw(budget), plan.strategy, plan.reason, mask,
                                   target)
            return self._stream(sampler, plan, budget, target, mask)

    def _token_mask(self, batch: ModelInputs, plan: Plan) -> torch.Tensor | None:
        """The inputs' attention mask ``(B, T)`` when the outputs are per token ``(B, T, V)``
        of the same length (a decoder's outputs follow its own ids: then no mask)."""
        mask = batch.mask()
        if self.task != "classification" or mask is None:
            return None
        shape = plan.row_shape
        return mask.bool() if len(shape) == 2 and shape[0] == mask.shape[1] else None

    def _stream(self, sampler: Sampler, plan: Plan, budget: int,
                target: torch.Tensor | None, mask: torch.Tensor | None) -> P:
        auto = self.samples == "auto"
        stream: ClassificationStream | RegressionStream
        if self.task == "classification":
            stream = ClassificationStream(from_logits=self.from_logits, mask=mask)
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
        reason = plan.reason + (f"; samples='auto' stopped at S={drawn} (tol={self.tol}, "
                                f"max_samples={self.max_samples})" if auto else "")
        pred: Prediction
        if isinstance(stream, ClassificationStream):
            pred = ClassificationPrediction.from_measures(
                stream.measures(), n_samples=drawn, strategy=plan.strategy, reason=reason,
                mask=mask, samples_per_batch=[drawn])
        else:
            pred = RegressionPrediction.from_measures(
                stream.measures(), n_samples=drawn, strategy=plan.strategy, reason=reason,
                tau=self.tau, target=target, samples_per_batch=[drawn])
        if self.keep_samples:
            values, log_var = self._split(_cat(kept))
            pred.samples = values
            if isinstance(pred, RegressionPrediction):
                pred.log_var_samples = log_var
        return cast(P, pred)  # the task chose P (see the overloads of __init__)

    def _precise(self, stream: ClassificationStream | RegressionStream) -> bool:
        if float(stream.mean_se().max()) > self.tol:
            return False
        return not (isinstance(stream, ClassificationStream)
                    and float(stream.mi_se().max()) > self.tol)

    def predict_loader(self, loader: Iterable[Any]) -> P:
        """Predict every batch of ``loader`` and join the results along B.

        Each item is a batch (a tensor, or a mapping of keyword inputs such as a tokenized
        batch), or an ``(inputs, targets, ...)`` tuple/list whose first element is the input
        (targets are ignored).
        """
        if isinstance(loader, (torch.Tensor, Mapping, str, bytes)) or not isinstance(
                loader, Iterable):
            raise DropkitTypeError(expected("loader", "an iterable of batches (a DataLoader, a "
                                            "list of tensors or of mappings)",
                                            type(loader).__name__))
        parts: list[P] = []
        total = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
        for item in progress_bar(loader, total=total, enabled=self.progress, desc="MC dropout",
                         unit="batch"):
            x = item[0] if isinstance(item, (tuple, list)) and item else item
            parts.append(self.predict(x))
        if not parts:
            raise DropkitValueError(expected("loader", "at least one batch", "an empty loader"))
        return Prediction.concatenate(parts)

    def deterministic(self, x: Any = None, **inputs: Any) -> P:
        """The weight-scaled prediction: one pass with every module in eval (dropout off).

        Returned as a one-sample `Prediction`, so its ``mean`` compares directly with
        `predict`'s (its mutual information is 0 by construction). Runs on an all-eval copy of
        the module tree: the model itself is not switched.
        """
        batch = check_inputs(x, inputs)
        m = set_flags(shadow(self.model), set())
        try:
            with torch.inference_mode():
                out = select_samples(batch.call(m), self.output, 1, batch.b)
        except (DropkitTypeError, DropkitValueError):
            raise
        except Exception as err:
            first = (str(err).strip().splitlines() or [""])[0][:300]
            raise DropkitValueError(expected(
                "x", "inputs the model's forward accepts",
                f"{batch.describe()}, on which the forward raised {type(err).__name__}: "
                f"{first}")) from err
        check_output_finite(out)
        mask = batch.mask()
        if not (isinstance(out, torch.Tensor) and out.dim() == 4 and mask is not None
                and out.shape[2] == mask.shape[1]):
            mask = None
        return self._build(out, "deterministic", "one pass with dropout off (weight scaling)",
                           None if mask is None else mask.bool())

    def __repr__(self) -> str:
        return (f"MCDropout(task={self.task!r}, samples={self.samples!r}, "
                f"strategy={self.strategy!r}, max_batch={self.max_batch})")


def _cat(parts: list[Output]) -> Output:
    if isinstance(parts[0], tuple):
        return tuple(torch.cat([p[i] for p in parts], 0) for i in range(len(parts[0])))
    return torch.cat(parts, 0)  # type: ignore[arg-type]
