"""Draw chunks of samples of one batch with a planned strategy.

A `Sampler` runs on the plan's configured copy of the model (`dropkit.inspection.shadow`): the
user's model is never switched, so other threads calling it see it exactly as it is.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from dropkit.mc import cached_graph as G
from dropkit.mc.cached_hooks import HookPlan
from dropkit.mc.inputs import ModelInputs
from dropkit.mc.outputs import Output, Selector, check_output_finite, select_samples
from dropkit.mc.uncached import join, loop_samples, stacked_samples


class Sampler:
    """Draws samples ``(c, B, ...)`` of the batch ``x`` with one strategy.

    ``strategy``: ``"loop"``/``"stacked"`` (passes of the whole model) or ``"cached"`` (the
    deterministic prefix runs once per row chunk, the rest per sample), whose ``prefix`` is
    ``"graph"`` (torch.fx) or ``"hooks"``; ``samples_per_pass``: None for as many as
    ``max_batch`` allows.
    """

    def __init__(self, model: nn.Module, x: ModelInputs, strategy: str,
                 samples_per_pass: int | None, *, prefix: str | None = None,
                 max_batch: int | None, output: Selector,
                 split_at: str | None = None, switch_on: tuple[str, ...] = (),
                 graph: G.GraphPlan | None = None, fast_masks: bool = True) -> None:
        if (strategy == "cached") != (prefix in ("graph", "hooks")):
            raise ValueError(f"Sampler: strategy {strategy!r} with prefix {prefix!r}")
        self.model, self.x, self.strategy, self.prefix = model, x, strategy, prefix
        self.samples_per_pass, self.max_batch = samples_per_pass, max_batch
        self.output = output
        self.split_at, self.switch_on, self.graph = split_at, switch_on, graph
        self.fast_masks = fast_masks
        self.row_step = x.b if max_batch is None else min(x.b, max_batch)
        self._cache: list[Any] = []  # per row chunk: graph cache or HookPlan

    def _per_pass(self, rows: int, c: int) -> int:
        k = c if self.samples_per_pass is None else min(c, self.samples_per_pass)
        if self.max_batch is not None:
            k = min(k, max(1, self.max_batch // rows))
        return max(1, k)

    def draw(self, c: int) -> Output:
        """``c`` more samples, ``(c, B, ...)``; no pass takes more than ``max_batch`` rows."""
        if self.strategy == "loop":
            return loop_samples(self.model, self.x, c, max_batch=self.max_batch,
                                output=self.output)
        if self.strategy == "stacked":
            rows = (self.samples_per_pass or c) * self.x.b
            mb = rows if self.max_batch is None else min(rows, self.max_batch)
            return stacked_samples(self.model, self.x, c, max_batch=mb, output=self.output)
        parts = []
        for i, start in enumerate(range(0, self.x.b, self.row_step)):
            xs = self.x.rows(start, start + self.row_step)
            if len(self._cache) <= i:
                self._cache.append(self.run_prefix(xs))
            k, done, chunks = self._per_pass(xs.b, c), 0, []
            while done < c:
                n = min(k, c - done)
                chunks.append(self.cached_pass(self._cache[i], xs, n))
                done += n
            parts.append(join(chunks))
        return join(parts, dim=1)

    def run_prefix(self, xs: ModelInputs) -> Any:
        """Run the deterministic prefix once on the rows ``xs``."""
        if self.prefix == "graph":
            assert self.graph is not None
            return G.run_prefix(self.graph, xs)
        hp = HookPlan(self.model, self.split_at, list(self.switch_on))
        hp.capture(lambda: xs.call(self.model), xs.b)
        return hp

    def cached_pass(self, prefix: Any, xs: ModelInputs, n: int, check: bool = False) -> Output:
        """``n`` samples of the rows ``xs`` from their cached prefix."""
        if self.prefix == "graph":
            assert self.graph is not None
            raw = G.run_suffix(self.graph, prefix, n, xs.b, fast_masks=self.fast_masks)
        else:
            raw = prefix.run(lambda: xs.call(self.model), n, xs.b, check=check)
        out = select_samples(raw, self.output, n, xs.b)
        check_output_finite(out)
        return out
