"""Cached-prefix sampling: exact against stacked with fixed masks, falls back, never wrong."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import dropkit
from dropkit.errors import DropkitValueError
from dropkit.inspection.borrow import forked_rng
from dropkit.mc import cached_graph as G
from dropkit.mc.cached_hooks import HookPlan, SkipAcrossSplit
from dropkit.mc.inputs import check_inputs
from dropkit.mc.mode import mc_mode
from dropkit.mc.sampler import Sampler
from dropkit.mc.uncached import stacked_samples
from tests.zoo import small as M

torch.set_num_threads(1)


def _cached(model: nn.Module, x: torch.Tensor, s: int, seed: int, prefix: str = "graph",
            split_at: str | None = None, fast: bool = False, per_pass: int | None = None,
            max_batch: int | None = None):
    with mc_mode(model) as rep, torch.inference_mode(), forked_rng(model, seed):
        on = tuple(rep.stochastic)
        graph = G.build_plan(model, list(on)) if prefix == "graph" else None
        sampler = Sampler(model, check_inputs(x), "cached", per_pass, prefix=prefix,
                          max_batch=max_batch,
                          output=None, split_at=split_at, switch_on=on, graph=graph,
                          fast_masks=fast)
        return sampler.draw(s)


def _stacked(model: nn.Module, x: torch.Tensor, s: int, seed: int, max_batch=None):
    with mc_mode(model), torch.inference_mode(), forked_rng(model, seed):
        return stacked_samples(model, check_inputs(x), s, max_batch=max_batch, output=None)


def _state(model: nn.Module) -> list:
    return ([(n, m.training) for n, m in model.named_modules()]
            + [(n, t.clone()) for n, t in model.state_dict().items()])


def _same_state(a: list, b: list) -> bool:
    return all(x[0] == y[0] and (torch.equal(x[1], y[1]) if isinstance(x[1], torch.Tensor)
                                 else x[1] == y[1]) for x, y in zip(a, b, strict=True))


MODELS = {
    "cnn_bn_head": (M.cnn_bn_head, lambda: torch.randn(5, 1, 8, 8)),
    "resnet": (lambda: M.ResNet().eval(), lambda: torch.randn(3, 1, 6, 6)),
    "mlp": (M.mlp, lambda: torch.randn(7, 10)),
    "transformer": (lambda: M.Transformer().eval(), lambda: torch.randint(0, 20, (4, 8))),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_graph_cached_equals_stacked_with_fixed_masks(name: str) -> None:
    torch.manual_seed(0)
    make, data = MODELS[name]
    model, x = make(), data()
    before = _state(model)
    ref = _stacked(model, x, 6, seed=3)
    got = _cached(model, x, 6, seed=3)
    assert got.shape == ref.shape == (6, x.shape[0], ref.shape[-1])
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got[0], got[1])  # the samples are stochastic
    assert _same_state(before, _state(model))


@pytest.mark.parametrize("name", list(MODELS))
def test_auto_uses_cached_and_matches_stacked_mean(name: str) -> None:
    torch.manual_seed(1)
    make, data = MODELS[name]
    model, x = make(), data()
    pred = dropkit.MCDropout(model, samples=400, seed=0, progress=False).predict(x)
    assert pred.strategy == "cached", pred.strategy_reason
    assert "torch.fx" in pred.strategy_reason and "by rule" in pred.strategy_reason  # seeded
    ref = dropkit.MCDropout(model, samples=400, strategy="stacked", seed=1,
                            progress=False).predict(x)
    # two independent estimates of the same mean: |diff| <= 5 standard errors
    se = (ref.class_std ** 2 / 400 * 2).sqrt()
    assert bool(((pred.mean - ref.mean).abs() <= 5 * se + 1e-3).all())


def test_prefix_runs_once() -> None:
    model, x = M.cnn_bn_head(), torch.randn(4, 1, 8, 8)
    calls = {"conv": 0, "head": 0}
    model[0].register_forward_hook(lambda *a: calls.__setitem__("conv", calls["conv"] + 1))
    model[12].register_forward_hook(lambda *a: calls.__setitem__("head", calls["head"] + 1))
    _cached(model, x, 10, seed=0, per_pass=3)
    assert calls == {"conv": 1, "head": 4}  # 10 samples in passes of 3, 3, 3, 1


def test_multiple_outputs_and_deterministic_output_expanded() -> None:
    torch.manual_seed(2)
    model, x = M.TwoHeads().eval(), torch.randn(5, 4)
    mu, h = _cached(model, x, 4, seed=7)
    ref_mu, ref_h = _stacked(model, x, 4, seed=7)
    torch.testing.assert_close(mu, ref_mu)
    torch.testing.assert_close(h, ref_h)
    assert h.shape == (4, 5, 8) and torch.equal(h[0], h[3])  # deterministic, repeated


def test_fast_masks_law_and_mean() -> None:
    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = G._fast_dropout(x, 0.3)
    kept = y != 0
    assert abs(float(kept.float().mean()) - 0.7) < 0.005  # 0.7 +- 5 sd (sd ~ 0.001)
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    model, xb = M.mlp(), torch.randn(3, 10)
    fast = _cached(model, xb, 3000, seed=0, fast=True)
    slow = _stacked(model, xb, 3000, seed=1)
    se = ((fast.var(0) + slow.var(0)) / 3000).sqrt()
    assert bool(((fast.mean(0) - slow.mean(0)).abs() <= 5 * se).all())


def test_max_batch_bounds_every_pass_in_every_strategy() -> None:
    torch.manual_seed(0)
    model, x = M.cnn_bn_head(), torch.randn(6, 1, 8, 8)
    seen: list[int] = []
    hooks = [m.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[0]))
             for m in (model[0], model[9], model[12])]
    for strategy in ("loop", "stacked", "cached", "auto"):
        seen.clear()  # the first call also plans (checking passes): they obey max_batch too
        out = dropkit.sample(model, x, 7, strategy=strategy, max_batch=4, seed=0)
        assert out.shape == (7, 6, 4)
        assert seen and max(seen) <= 4, (strategy, seen)
    for h in hooks:
        h.remove()
    # with max_batch the cached samples still equal the stacked ones when masks are fixed
    got = _cached(model, x, 4, seed=5, max_batch=6)  # one sample (6 rows) per pass
    torch.testing.assert_close(got, _stacked(model, x, 4, seed=5, max_batch=6))


def test_hooks_cached_equals_stacked_and_restores_model() -> None:
    torch.manual_seed(0)
    model, x = M.cnn_bn_head(), torch.randn(5, 1, 8, 8)
    before = _state(model)
    got = _cached(model, x, 5, seed=4, prefix="hooks", split_at="11")
    torch.testing.assert_close(got, _stacked(model, x, 5, seed=4))
    assert _same_state(before, _state(model))
    assert all("forward" not in m.__dict__ for m in model.modules())
    pred = dropkit.MCDropout(model, samples=8, split_at="11", progress=False).predict(x)
    assert pred.strategy == "cached" and "hooks" in pred.strategy_reason


def test_hooks_detect_skip_across_split() -> None:
    model, x = M.SkipAcross().eval(), torch.randn(4, 6)
    plan = HookPlan(model, None, ["drop"])
    with mc_mode(model), torch.inference_mode():
        plan.capture(lambda: model(x), 4)
        with pytest.raises(SkipAcrossSplit, match="before the split at 'drop' is used after"):
            plan.run(lambda: model(x), 2, 4, check=True)
    with pytest.raises(DropkitValueError, match="strategy.*cached.*skip connection across"):
        dropkit.sample(model, x, 3, strategy="cached", split_at="drop")
    out = dropkit.sample(model, x, 3, split_at="drop", seed=0)  # auto falls back
    assert out.shape == (3, 4, 2)


def test_graph_handles_skip_that_hooks_reject() -> None:
    torch.manual_seed(0)
    model, x = M.SkipAcross().eval(), torch.randn(4, 6)
    torch.testing.assert_close(_cached(model, x, 5, seed=2), _stacked(model, x, 5, seed=2))


def test_untraceable_model_falls_back_to_hooks() -> None:
    torch.manual_seed(0)
    model, x = M.Untraceable().eval(), torch.randn(4, 6)
    pred = dropkit.MCDropout(model, samples=6, progress=False).predict(x)
    assert pred.strategy == "cached" and "hooks" in pred.strategy_reason
    assert "could not trace" in pred.strategy_reason
    torch.testing.assert_close(_cached(model, x, 5, seed=2, prefix="hooks"),
                               _stacked(model, x, 5, seed=2))


def test_no_prefix_uses_plain_strategy() -> None:
    model = nn.Sequential(nn.Dropout(0.2), nn.Linear(5, 2)).eval()
    pred = dropkit.MCDropout(model, samples=4, progress=False).predict(torch.randn(3, 5))
    assert pred.strategy in ("loop", "stacked")
    assert "no cached prefix" in pred.strategy_reason
    with pytest.raises(DropkitValueError, match="strategy"):
        dropkit.sample(model, torch.randn(3, 5), 2, strategy="cached")


def test_auto_is_reproducible_with_a_seed() -> None:
    model, x = M.mlp(), torch.randn(4, 10)
    a = dropkit.sample(model, x, 9, seed=11)
    b = dropkit.sample(model, x, 9, seed=11)
    assert torch.equal(a, b)


def test_bad_split_at() -> None:
    model, x = M.mlp(), torch.randn(2, 10)
    with pytest.raises(DropkitValueError, match="split_at"):
        dropkit.sample(model, x, 2, strategy="cached", split_at="no.such.module")
    with pytest.raises(TypeError, match="split_at"):
        dropkit.sample(model, x, 2, split_at=3)  # type: ignore[arg-type]


def test_unseeded_auto_samples_with_the_timed_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    # the timing itself is tested with a fake clock in test_mc_chunking.py; here: the choice it
    # returns is the number of samples every cached pass carries
    from dropkit.mc import chunking
    monkeypatch.setattr(chunking, "measure", lambda *a, **kw: (3, "timed: 3 per pass"))
    model, x = M.cnn_bn_head(), torch.randn(4, 1, 8, 8)
    rows: list[int] = []
    model[12].register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[0]))
    mc = dropkit.MCDropout(model, samples=7, progress=False)
    pred = mc.predict(x)
    assert mc.plan is not None and mc.plan.samples_per_pass == 3
    assert pred.strategy == "cached" and pred.strategy_reason.endswith("timed: 3 per pass")
    # the layer after the dropout runs 3 + 3 + 1 samples of B = 4 rows
    assert rows[-3:] == [12, 12, 4]


class _BatchSizeInSuffix(nn.Module):
    """Reads the batch size in the prefix and uses it after the dropout: caching breaks it."""

    def __init__(self) -> None:
        super().__init__()
        self.lin, self.drop, self.out = nn.Linear(4, 6), nn.Dropout(0.3), nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        return self.out(self.drop(self.lin(x)).reshape(b, 6))


def test_check_on_a_row_subset_still_refuses_a_large_batch_that_caching_breaks() -> None:
    # the cached-vs-stacked check runs on at most VERIFY_ROWS rows; a 150-row batch whose
    # suffix uses the prefix's batch size must still be refused and sampled uncached
    from dropkit.mc.plan import VERIFY_ROWS

    torch.manual_seed(0)
    model, x = _BatchSizeInSuffix().eval(), torch.randn(150, 4)
    assert x.shape[0] > VERIFY_ROWS
    samples = dropkit.sample(model, x, 400, seed=0)
    plan = dropkit.mc.plan.plans(model)[-1]
    assert plan.strategy in ("loop", "stacked") and "cached" in plan.reason
    # dropout before a linear layer: the MC mean estimates the deterministic output
    with torch.no_grad():
        det = model(x)
    se = samples.std(0) / 400**0.5
    assert bool(((samples.mean(0) - det).abs() <= 5 * se + 1e-6).all())
