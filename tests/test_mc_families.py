"""MC dropout on every family of the zoo, judged by the independent oracle of tests/firing.py.

For each model (transformers, timm, torchvision; small configs, random weights):
* the dropout that fires under dropkit's configuration, traced by the oracle on the very copy
  dropkit samples from, equals what fires in train mode with BatchNorm in eval (every true site
  switched, nothing else), with stochastic depth on;
* the samples vary, and the model is bitwise unchanged, also after a failure mid-way;
* on a representative subset, the MC mean equals the train-mode (BatchNorm eval) reference
  within Monte Carlo error.
A model whose only dropout has p=0 is refused.
"""

from __future__ import annotations

import re

import pytest
import torch

import dropkit
from dropkit.mc import plan as P

pytest.importorskip("transformers")
pytest.importorskip("timm")

from tests import firing as F
from tests.zoo import FAMILIES

torch.set_num_threads(1)


def _configured_copy(model: torch.nn.Module) -> torch.nn.Module:
    """The module-tree copy dropkit samples from (this thread's, for the last plan)."""
    plan = P.plans(model)[-1]
    return P.configured(model, plan.switch_on, P._entry(model).fp)


def _site(key: str) -> str:
    return re.sub(r"#\d+$", "", key)


@pytest.mark.parametrize("eid", sorted(FAMILIES))
def test_every_true_site_is_switched_and_nothing_else(eid: str) -> None:
    entry = FAMILIES[eid]
    model, inputs = entry.build()
    before = F.state_fingerprint(model)
    truth = F.true_sites(model, inputs)
    if not entry.rates:  # p=0 placeholders only: nothing can vary
        assert truth == {}
        with pytest.raises(dropkit.NoDropoutError):
            dropkit.sample(model, inputs, 2, seed=0, stochastic_depth=True)
        assert F.state_fingerprint(model) == before
        return
    samples = dropkit.sample(model, inputs, 3, seed=0, stochastic_depth=True)
    got = F.trace_firing(_configured_copy(model), inputs)
    assert got == truth  # same sites (and calls per site) at the same rates
    assert sorted(got.values()) == pytest.approx(sorted(entry.rates))
    assert {_site(k) for k in truth} <= set(P.plans(model)[-1].firing.fired)
    assert float(samples.double().var(0).max()) > 0
    assert F.state_fingerprint(model) == before


@pytest.mark.parametrize("eid", ["hf-bert-eager-attention", "hf-gpt2-sdpa-default",
                                 "hf-llama-eager-attention", "timm-resnet-droprate",
                                 "tv-efficientnet_b0", "tv-densenet", "timm-vit-attn"])
def test_mc_mean_equals_train_mode_reference(eid: str) -> None:
    model, inputs = FAMILIES[eid].build()
    s = 48
    samples = dropkit.sample(model, inputs, s, seed=0, stochastic_depth=True)
    ref = F.train_reference(model, inputs, s, seed=1)
    # up to 1600 elements compared, each with a standard error estimated from 48 samples: a
    # 6-SE bound keeps the chance of a false alarm below 1e-4 for the whole output
    F.assert_mean_close(samples, ref, z=6.0)
    # and a shift would show as many moderately large z: at most 1% of elements beyond 3 SE
    assert float((F.mean_z(samples, ref) > 3).double().mean()) <= 0.01


@pytest.mark.parametrize("eid", ["hf-bert-sdpa-default", "tv-efficientnet_b0"])
def test_state_unchanged_after_a_failure_mid_way(eid: str) -> None:
    model, inputs = FAMILIES[eid].build()
    before = F.state_fingerprint(model)
    last = [m for m in model.modules() if not any(True for _ in m.children())][-1]
    # a hook added to the model is part of it: the plan is rebuilt and the copy runs it. With
    # the loop strategy one checking pass comes first, then the failure hits the 2nd sample.
    with F.fail_at(last, 3), pytest.raises(F.Interrupt, match="injected failure"):
        dropkit.sample(model, inputs, 8, seed=0, stochastic_depth=True, strategy="loop")
    assert F.state_fingerprint(model) == before
