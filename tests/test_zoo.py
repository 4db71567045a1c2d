"""The zoo and its oracle: the firing trace counts the sites counted by hand, sees nothing in
eval mode, and each helper of tests/firing.py is checked against a hand computation."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from tests.firing import (
    OUTSIDE,
    FiringTrace,
    Interrupt,
    assert_mean_close,
    call,
    fail_at,
    output_tensor,
    state_fingerprint,
    trace_firing,
    train_reference,
    true_sites,
)
from tests.zoo import FAMILIES, P_ATTN


@pytest.mark.parametrize("eid", sorted(FAMILIES))
def test_zoo_fires_the_hand_counted_sites_in_train_mode_only(eid: str) -> None:
    entry = FAMILIES[eid]
    model, inputs = entry.build()
    before = state_fingerprint(model)
    assert trace_firing(model, inputs) == {}, "eval mode: nothing may fire"
    fired = true_sites(model, inputs)
    assert sorted(fired.values()) == pytest.approx(list(entry.rates), abs=1e-6)
    names = dict(model.named_modules())
    for site in fired:
        assert site.split("#")[0] in names, site  # a real module path
    if eid.endswith("-attention"):
        # attention dropout is a float handed to a function: the attention module fires, not
        # its (unused, in BERT/DistilBERT/RoBERTa) nn.Dropout child
        assert all(not isinstance(names[s.split("#")[0]], nn.Dropout) for s in fired)
        assert set(fired.values()) == {P_ATTN}
    # the outputs agree with the trace: train-mode samples vary iff something fires
    ref = train_reference(model, inputs, 2, seed=0)
    with torch.no_grad():
        det = output_tensor(call(model, inputs))
    if entry.rates:
        assert not torch.equal(ref[0], ref[1])
    else:
        torch.testing.assert_close(ref, torch.stack([det, det]), rtol=1e-5, atol=1e-5)
    assert state_fingerprint(model) == before, "tracing must leave the model as it was"


class _Ops(nn.Module):
    """Calls one of each op the oracle knows, with rates chosen to tell them apart."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.11)
        self.mha = nn.MultiheadAttention(4, 1, dropout=0.12, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, 4)
        x = self.drop(x)
        x = self.drop(x)  # the same module twice: sites "drop" and "drop#2"
        x = F.dropout(x, 0.5, training=False)  # inactive
        x = F.dropout(x, 0.0, training=True)  # rate 0: inactive
        x = F.alpha_dropout(x, 0.5)  # training defaults to False there: inactive
        x = torch.dropout(x, 0.13, True)
        x = F.dropout1d(x, 0.14, True)
        x = x + self.mha(x, x, x, need_weights=False)[0]
        q = x.unsqueeze(1)  # (B, 1, T, 4)
        x = F.scaled_dot_product_attention(q, q, q, dropout_p=0.15).squeeze(1)
        x = x * x.new_empty(x.shape[0], 1, 1).bernoulli_(0.84)  # timm/torchvision drop path
        keep = 0.83
        x = x * (keep + torch.rand(x.shape[0], 1, 1)).floor_()  # HF drop path
        return x * (torch.rand(x.shape) < 0.82)  # a uniform mask kept below 0.82


def test_trace_sees_each_op_with_its_rate_and_numbers_repeats_per_pass() -> None:
    model = _Ops().train()
    x = torch.randn(2, 3, 4)
    with FiringTrace(model) as tr, torch.no_grad():
        model(x)
        _ = torch.rand(3) < 0.5  # outside the model: a seed or RNG bookkeeping, not a site
        model(x)  # a second pass maps onto the same keys
        F.dropout(x, 0.19)  # the caller's own dropout, after the model
    # root calls are numbered in call order, inactive ones included ("", "#2", "#3" are the
    # three inactive calls)
    expected = {"drop": 0.11, "drop#2": 0.11, "#4": 0.13, "#5": 0.14, "mha": 0.12, "#6": 0.15,
                "#7": 0.16, "#8": 0.17, "#9": 0.18}
    fired = tr.firing()
    assert fired.pop(OUTSIDE) == pytest.approx(0.19)
    assert fired.keys() == expected.keys()
    assert [fired[k] for k in expected] == pytest.approx(list(expected.values()), abs=1e-6)
    assert sum(c.fired for c in tr.calls) == 2 * len(expected) + 1
    # the three inactive root calls and the two Dropout modules' calls are not all: MHA's
    # inner ops run inside the mode's handler and are not seen twice
    assert sum(not c.fired for c in tr.calls) == 2 * 3
    model.eval()
    fired_eval = trace_firing(model, x)
    # in eval only the calls that do not depend on the module flags remain: an explicit
    # train=True, SDPA's dropout_p and the hand-made masks
    keep = ("#4", "#5", "#6", "#7", "#8", "#9")
    assert fired_eval == pytest.approx({k: expected[k] for k in keep})


def test_trace_removes_its_hooks_on_error() -> None:
    model = nn.Sequential(nn.Dropout(0.2), nn.Linear(3, 2)).train()
    before = state_fingerprint(model)
    with pytest.raises(RuntimeError):
        trace_firing(model, torch.randn(2, 5))  # wrong width: fails after the dropout fired
    assert state_fingerprint(model) == before


def _bn_model() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 2))
    with torch.no_grad():  # running statistics far from a batch's own
        model[1].running_mean.copy_(torch.tensor([1.0, -2.0, 0.5, 3.0]))
        model[1].running_var.copy_(torch.tensor([4.0, 0.25, 1.0, 9.0]))
    return model.eval(), torch.randn(5, 3)


def test_train_reference_is_dropout_on_batchnorm_eval_and_restores_flags() -> None:
    model, x = _bn_model()
    model[3].train()  # a mixed state to restore exactly
    before = state_fingerprint(model)
    ref = train_reference(model, x, 400, seed=3)
    assert state_fingerprint(model) == before  # flags and BatchNorm statistics untouched
    # by hand: BatchNorm with its running statistics, then inverted dropout, then the head
    with torch.no_grad():
        h = (model[0](x) - model[1].running_mean) / (model[1].running_var + model[1].eps).sqrt()
        h = h * model[1].weight + model[1].bias
        torch.manual_seed(3)
        hand = torch.stack([model[3](F.dropout(h, 0.5, True)) for _ in range(400)])
    torch.testing.assert_close(ref, hand, rtol=1e-6, atol=1e-6)
    assert ref.var(0).min() > 0


def test_train_reference_restores_flags_on_error() -> None:
    model, _ = _bn_model()
    before = state_fingerprint(model)
    with pytest.raises(RuntimeError):
        train_reference(model, torch.randn(5, 7), 2, seed=0)
    assert state_fingerprint(model) == before


def test_assert_mean_close_passes_for_one_distribution_and_fails_for_a_shift() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, 40, generator=g), torch.randn(50, 40, generator=g)
    assert_mean_close(a, b)
    se = math.sqrt(2 / 50)
    shifted = b.clone()
    shifted[:, 7] += 8 * se  # one element off by about 8 standard errors
    with pytest.raises(AssertionError, match="index 7"):
        assert_mean_close(a, shifted)
    const = torch.full((4, 3), 2.0)
    assert_mean_close(const, const.clone())  # deterministic and equal: the floor, no 0/0
    with pytest.raises(AssertionError):
        assert_mean_close(const, const + 1e-3)
    with pytest.raises(AssertionError):
        assert_mean_close(a, torch.full_like(b, math.nan))


def test_state_fingerprint_sees_every_kind_of_change() -> None:
    model, _ = _bn_model()
    base = state_fingerprint(model)
    assert state_fingerprint(copy.deepcopy(model)) == base

    def changed(edit: object) -> bool:
        m = copy.deepcopy(model)
        edit(m)  # type: ignore[operator]
        return state_fingerprint(m) != base

    def one_ulp(m: nn.Module) -> None:
        with torch.no_grad():
            w = m[0].weight
            w[0, 0] = torch.nextafter(w[0, 0], torch.tensor(math.inf))

    def bn_stats(m: nn.Module) -> None:
        m[1].num_batches_tracked += 1

    assert changed(one_ulp)
    assert changed(bn_stats)
    assert changed(lambda m: m[2].train())
    assert changed(lambda m: setattr(m[2], "p", 0.4))
    assert changed(lambda m: m[2].register_forward_hook(lambda *a: None))
    assert changed(lambda m: setattr(m[2], "forward", lambda x: x))
    assert changed(lambda m: m[0].weight.requires_grad_(False))


def test_fail_at_interrupts_the_chosen_call_and_leaves_no_hook() -> None:
    model, x = _bn_model()
    calls: list[int] = []
    model[3].register_forward_pre_hook(lambda m, a: calls.append(1))
    before = state_fingerprint(model)
    with pytest.raises(Interrupt), fail_at(model[3], 3):
        train_reference(model, x, 5, seed=0)
    assert len(calls) == 3  # the third pass ran the head, then was interrupted
    assert state_fingerprint(model) == before  # flags restored by train_reference, hook gone


class _PassThrough(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("other_inside", [True, False])
def test_trace_sees_dropout_beside_another_function_mode(other_inside: bool) -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.3)).train()
    outer, inner = (FiringTrace(model), _PassThrough())
    if not other_inside:
        outer, inner = inner, outer  # type: ignore[assignment]
    with outer as a, inner as b, torch.no_grad():
        model(torch.randn(2, 3))
    tr = a if other_inside else b
    assert tr.firing() == pytest.approx({"1": 0.3})
