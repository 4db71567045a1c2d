"""Property-based fuzzing of the public sampling API: every call gives a dropkit error or a
finite result that matches a naive reference, and the model is bitwise unchanged."""

from __future__ import annotations

import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import dropkit
from tests.zoo.small import assert_same_state, snapshot

torch.set_num_threads(1)
_MODEL = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3)).eval()

anything = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**20), st.floats(allow_nan=True),
                     st.text(max_size=5), st.just(torch.ones(2)), st.just([1, 2]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(samples=st.one_of(st.integers(-2, 6), anything), strategy=st.one_of(
    st.sampled_from(["auto", "loop", "stacked", "cached"]), anything),
       max_batch=st.one_of(st.none(), st.integers(-1, 9), anything),
       seed=st.one_of(st.none(), st.integers(-1, 2**64), anything),
       rows=st.integers(0, 4), cols=st.sampled_from([4, 5]),
       bad=st.sampled_from([None, "nan", "int"]))
def test_sample_gives_an_error_or_a_correct_result(samples, strategy, max_batch, seed, rows,
                                                   cols, bad) -> None:
    snap = snapshot(_MODEL)
    x = torch.randn(rows, cols)
    if bad == "nan" and rows:
        x[0, 0] = math.nan
    elif bad == "int":
        x = x.long()
    try:
        out = dropkit.sample(_MODEL, x, samples, strategy=strategy, max_batch=max_batch,
                             seed=seed)
    except dropkit.DropkitError:
        assert_same_state(_MODEL, snap)
        return
    assert_same_state(_MODEL, snap)
    assert out.shape == (samples, rows, 3) and bool(torch.isfinite(out).all())
    # each sample is the head applied to the deterministic trunk through a dropout mask with
    # entries in {0, 1/0.7}: every output lies within the bound that mask set allows
    with torch.no_grad():
        h = torch.relu(_MODEL[0](x)).double()  # (B, 16)
        w, b = _MODEL[3].weight.double(), _MODEL[3].bias.double()
    bound = (h.abs() @ w.T.abs()) / 0.7 + 1e-4
    assert bool(((out.double() - b).abs() <= bound).all())
    if isinstance(seed, int) and not isinstance(seed, bool):  # seeded calls reproduce bitwise
        again = dropkit.sample(_MODEL, x, samples, strategy=strategy, max_batch=max_batch,
                               seed=seed)
        assert torch.equal(out, again)
