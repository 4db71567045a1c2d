"""dropkit.sample: (S, B, ...) samples, reproducible, bounded passes, model untouched."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import dropkit
from tests.zoo.small import CNN, Block, FunctionalMLP, assert_same_state, snapshot

STRATEGIES = ["loop", "stacked"]


class InputDropoutLinear(nn.Module):
    """y = w . dropout(x): mean and variance of the MC samples are known in closed form."""

    def __init__(self, w: torch.Tensor, p: float) -> None:
        super().__init__()
        self.drop = nn.Dropout(p)
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(x) @ self.w


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_mean_and_variance_match_closed_form(strategy):
    torch.set_default_dtype(torch.float64)
    try:
        p, d, s = 0.3, 10, 20_000
        w, x = torch.randn(d), torch.randn(4, d)
        out = dropkit.sample(InputDropoutLinear(w, p), x, s, strategy=strategy, seed=1)
    finally:
        torch.set_default_dtype(torch.float32)
    assert out.shape == (s, 4)
    mean, var = x @ w, (w**2 * x**2).sum(1) * p / (1 - p)
    # sample mean within 5 standard errors; sample variance within 5% (S = 20,000)
    assert torch.all((out.mean(0) - mean).abs() <= 5 * torch.sqrt(var / s))
    torch.testing.assert_close(out.var(0), var, rtol=0.05, atol=1e-9)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_seed_same_samples(strategy):
    model, x = CNN().eval(), torch.randn(3, 1, 8, 8)
    a = dropkit.sample(model, x, 7, strategy=strategy, seed=5)
    b = dropkit.sample(model, x, 7, strategy=strategy, generator=torch.Generator().manual_seed(5))
    c = dropkit.sample(model, x, 7, strategy=strategy, seed=6)
    assert a.shape == (7, 3, 3)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not a.requires_grad


def test_loop_and_stacked_agree_in_distribution():
    model, x = FunctionalMLP().eval(), torch.randn(2, 6)
    loop = dropkit.sample(model, x, 4000, strategy="loop", seed=0)
    stacked = dropkit.sample(model, x, 4000, strategy="stacked", seed=1)
    se = torch.sqrt(loop.var(0) / 4000 + stacked.var(0) / 4000)
    assert torch.all((loop.mean(0) - stacked.mean(0)).abs() <= 5 * se)


def test_user_rng_and_model_untouched():
    model = Block().train()
    snap, x = snapshot(model), torch.randn(2, 5, 16)
    rng = torch.get_rng_state()
    dropkit.sample(model, x, 3, seed=0)
    assert torch.equal(rng, torch.get_rng_state())
    assert_same_state(model, snap)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_max_batch_bounds_every_pass(strategy):
    model, rows = CNN().eval(), []
    model.features.register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[0]))
    x = torch.randn(10, 1, 8, 8)
    dropkit.sample(model, x, 6, strategy=strategy, max_batch=4, seed=0)  # plans (checks) once
    rows.clear()
    out = dropkit.sample(model, x, 6, strategy=strategy, max_batch=4, seed=0)
    assert out.shape == (6, 10, 3)
    assert max(rows) <= 4 and sum(rows) == 60


def test_samples_are_ordered_samples_first():
    # stacked: row b of sample s must come from input b (the reshape must not mix them)
    model = InputDropoutLinear(torch.ones(3), 0.5)
    x = torch.tensor([[1.0, 1.0, 1.0], [100.0, 100.0, 100.0]])
    out = dropkit.sample(model, x, 50, strategy="stacked", seed=0)
    assert torch.all(out[:, 0] <= 6) and torch.all((out[:, 1] == 0) | (out[:, 1] >= 200))


class MultiOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.drop = nn.Linear(4, 2), nn.Dropout(0.5)

    def forward(self, x):
        h = self.fc(self.drop(x))
        return {"mean": h[:, :1], "aux": h}, (h, h * 2), SimpleNamespace(logits=h)


def test_output_selectors_pick_the_values_of_each_pass():
    torch.manual_seed(0)
    model, x = MultiOut(), torch.randn(3, 4)
    first = dropkit.sample(model, x, 5, output=lambda out: out[0]["mean"], seed=0)
    logits = dropkit.sample(model, x, 5, output=lambda out: out[2], seed=0)  # .logits object
    # every sample is fc(mask * x / (1 - p)) for one of the 16 dropout masks of its row
    masks = torch.tensor([[(m >> i) & 1 for i in range(4)] for m in range(16)], dtype=x.dtype)
    with torch.no_grad():
        candidates = model.fc(masks[:, None, :] * x[None] * 2.0)  # (16, B, 2)
    gap = (logits[:, None] - candidates[None]).abs().amax(-1).amin(1)  # (S, B): nearest mask
    assert float(gap.max()) < 1e-6
    # the same seed gives the same passes whichever output is selected
    torch.testing.assert_close(first, logits[..., :1], rtol=0, atol=0)


def test_tuple_outputs_give_tuple_of_samples():
    pair = dropkit.sample(MultiOut(), torch.randn(3, 4), 5, output=lambda o: o[1], seed=0)
    assert isinstance(pair, tuple) and [t.shape for t in pair] == [(5, 3, 2)] * 2
    torch.testing.assert_close(pair[1], 2 * pair[0])


class DictOut(nn.Module):
    def __init__(self, key: str) -> None:
        super().__init__()
        self.drop, self.key = nn.Dropout(0.5), key

    def forward(self, x):
        return {self.key: self.drop(x)}


def test_dict_output_needs_a_selector_unless_it_has_logits():
    x = torch.ones(2, 3)
    with pytest.raises(dropkit.DropkitTypeError, match="`output` to be a selector"):
        dropkit.sample(DictOut("scores"), x, 2)
    got = dropkit.sample(DictOut("scores"), x, 4, output="scores", seed=0)
    assert set(got.unique().tolist()) <= {0.0, 2.0} and got.shape == (4, 2, 3)
    # a mapping with "logits" (transformers' ModelOutput is an OrderedDict) needs none
    torch.testing.assert_close(dropkit.sample(DictOut("logits"), x, 4, seed=0), got)
    with pytest.raises(dropkit.DropkitValueError, match="`output` to be a key or attribute"):
        dropkit.sample(DictOut("scores"), x, 2, output="missing")


def test_bad_input_messages():
    model, x = CNN().eval(), torch.randn(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"`samples` to be an integer >= 1, but got 0"):
        dropkit.sample(model, x, 0)
    with pytest.raises(ValueError, match=r"`strategy` to be one of 'auto', 'loop', 'stacked'"):
        dropkit.sample(model, x, 2, strategy="fast")
    with pytest.raises(ValueError, match=r"`x` to be finite values, but got 1 NaN"):
        bad = x.clone()
        bad[0, 0, 0, 0] = math.nan
        dropkit.sample(model, bad, 2)
    with pytest.raises(ValueError, match=r"`x` to be a non-empty batch"):
        dropkit.sample(model, x[:0], 2)
    with pytest.raises(ValueError, match=r"`max_batch` to be an integer >= 1"):
        dropkit.sample(model, x, 2, max_batch=0)
    with pytest.raises(dropkit.NoDropoutError):
        dropkit.sample(nn.Linear(3, 2), torch.randn(2, 3), 2)


def test_nan_model_output_is_reported():
    model = nn.Sequential(nn.Dropout(0.5), nn.Linear(3, 2))
    with torch.no_grad():
        model[1].weight.fill_(math.inf)
    snap = snapshot(model)
    with pytest.raises(ValueError, match=r"`model` to be a model whose outputs are finite"):
        dropkit.sample(model, torch.randn(2, 3), 2, seed=0)
    assert_same_state(model, snap)


def test_seeded_auto_is_reproducible_across_model_copies():
    # "auto" must not let a timing decision change which mask goes to which sample.
    import copy

    model, x = Block().eval(), torch.randn(3, 5, 16)
    twin = copy.deepcopy(model)
    a = dropkit.sample(model, x, 40, seed=11)
    b = dropkit.sample(twin, x, 40, seed=11)
    assert torch.equal(a, b)
