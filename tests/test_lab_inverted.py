"""Claim 4 (inverted vs classic scaling): the quick run, the conversion identity, and no scaling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dropkit.lab import inverted as I
from dropkit.lab.base import LabConfig
from dropkit.lab.train import seeded
from dropkit.mc.mcdropout import MCDropout
from tests.lab_claim_checks import check_claim, check_statements, rejudge, verdict_by_hand
from tests.zoo.small import assert_same_state, snapshot

CFG = LabConfig(quick=True, seeds=(0, 1), progress=False)


@pytest.fixture(scope="module")
def result():
    return I.run(CFG)


def _trained_classic(p: float, seed: int = 0, bias: bool = True) -> nn.Sequential:
    gen = torch.Generator().manual_seed(seed)
    with seeded(seed):
        model = I.build(16, 24, 5, p, "classic")
        if not bias:
            for m in model:
                if isinstance(m, nn.Linear):
                    m.bias = None
        with torch.no_grad():  # a "trained" net: random weights of a useful size
            for q in model.parameters():
                q.copy_(torch.randn(q.shape, generator=gen) * 0.5)
    return model.eval()


def test_quick_run_structure(result):
    check_claim(result, CFG, "inverted")
    assert [r["p"] for r in result.numbers["per_seed"][0]["by_p"]] == list(I.QUICK.ps)


def test_conversion_is_exact_in_the_run(result):
    assert result.numbers["identity_holds"] is True
    for seed_rows in result.numbers["per_seed"]:
        for r in seed_rows["by_p"]:
            assert r["conversion_rel_diff"] <= 1e-5
            assert r["conversion_mc_rel_diff"] <= 1e-5
            # the reparameterised training follows the same trajectory up to rounding
            assert r["trained_exact_rel_diff"] <= 1e-4


def test_verdict_is_recomputed_from_the_effects(result):
    damage = rejudge(result.numbers["effects"]["nll_damage_at_ref_p"], I.MIN_NLL_DAMAGE)
    error = rejudge(result.numbers["effects"]["error_damage_at_ref_p"], 0.01)
    check_statements(result, ["inv.same", "inv.torch", "inv.needed"])
    st = {s.id: s for s in result.statements}
    assert st["inv.needed"].numbers["nll_damage"]["per_seed"] == pytest.approx(
        result.numbers["effects"]["nll_damage_at_ref_p"])
    assert st["inv.needed"].verdict == verdict_by_hand([damage, error])
    # [inv.same]: the identity holds (previous test); part (b) from the naive nets' errors
    ref = result.numbers["reference_p"]
    naive = [I.NAIVE_TOLERANCE - abs(r["inverted_naive"]["error"] - r["classic"]["error"])
             for s in result.numbers["per_seed"] for r in s["by_p"] if r["p"] == ref]
    assert st["inv.same"].numbers["naive_training"]["per_seed"] == pytest.approx(naive)
    assert st["inv.same"].verdict == ("supported" if rejudge(naive, 0.0) == "supported"
                                      else "partly supported")
    ref = result.numbers["reference_p"]
    for seed_rows, d in zip(result.numbers["per_seed"],
                            result.numbers["effects"]["nll_damage_at_ref_p"], strict=True):
        row = next(r for r in seed_rows["by_p"] if r["p"] == ref)
        assert d == pytest.approx(row["no_scaling"]["nll"] - row["classic"]["nll"], abs=1e-12)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_to_inverted_gives_the_same_function_and_samples(p):
    model = _trained_classic(p)
    before = snapshot(model)
    converted = I.to_inverted(model)
    assert_same_state(model, before)  # the input model is not changed
    assert all(m.scaling == "classic" for m in model if isinstance(m, I.Dropout))
    assert all(m.scaling == "inverted" for m in converted if isinstance(m, I.Dropout))
    x = torch.randn(30, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float32)
    torch.testing.assert_close(converted(x), model(x), rtol=1e-5, atol=1e-5)
    # float64 reference: the weight-scaled classic net computed by hand
    h = x.double()
    lin = [m for m in model if isinstance(m, nn.Linear)]
    for k, layer in enumerate(lin):
        h = h @ layer.weight.double().T + layer.bias.double()
        if k < len(lin) - 1:
            h = torch.relu(h) * (1 - p)
    torch.testing.assert_close(converted(x).double(), h, rtol=1e-5, atol=1e-5)
    a, b = (MCDropout(m, samples=6, seed=3, progress=False, strategy="stacked").predict(x)
            for m in (model, converted))
    torch.testing.assert_close(b.samples, a.samples, rtol=1e-5, atol=1e-5)
    assert_same_state(model, before)


def test_without_scaling_multiplies_a_bias_free_relu_net_by_the_missing_factors():
    p = 0.4
    model = _trained_classic(p, bias=False)
    x = torch.randn(20, 16, generator=torch.Generator().manual_seed(2))
    unscaled = I.without_scaling(model)
    # ReLU is positively homogeneous: two missing (1-p) factors scale the logits by 1/(1-p)^2
    torch.testing.assert_close(unscaled(x), model(x) / (1 - p) ** 2, rtol=1e-5, atol=1e-6)
    assert all(m.scaling == "classic" for m in model if isinstance(m, I.Dropout))


def test_to_inverted_rejects_what_it_cannot_convert():
    with pytest.raises(ValueError, match="classic-scaling"):
        I.to_inverted(I.build(4, 8, 2, 0.5, "inverted"))
    bad = nn.Sequential(nn.Linear(4, 8), I.Dropout(0.5, scaling="classic"), nn.ReLU(),
                        nn.Linear(8, 2))
    with pytest.raises(ValueError, match="feed a Linear directly"):
        I.to_inverted(bad)


def test_adam_train_is_reproducible_and_leaves_the_global_rng():
    x = torch.rand(64, 16)
    y = torch.arange(64) % 5
    rng = torch.get_rng_state()
    a = I.adam_train(_trained_classic(0.3), x, y, I.QUICK, seed=4)
    b = I.adam_train(_trained_classic(0.3), x, y, I.QUICK, seed=4)
    assert torch.equal(torch.get_rng_state(), rng)
    for qa, qb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(qa, qb)
    assert not a.training


def test_torch_dropout_check_by_hand():
    out = I.torch_dropout_check((0.2, 0.5), n=20_000, seed=3)
    # the same draws by hand: torch's global stream seeded the same way
    torch.manual_seed(3)
    x = torch.rand(20_000, dtype=torch.float64) + 0.5
    for p in (0.2, 0.5):
        y = torch.nn.functional.dropout(x, p, training=True)
        zeroed = float((y == 0).double().mean())
        r = out[f"p={p:g}"]
        assert r["zeroed_fraction"] == pytest.approx(zeroed, abs=1e-12)
        assert r["zeroed_z"] == pytest.approx((zeroed - p) / (p * (1 - p) / 20_000) ** 0.5)
        assert abs(r["zeroed_z"]) < 4 and r["eval_is_identity"] is True
        assert r["kept_max_rel_diff_from_x_over_1_minus_p"] <= 1e-15


def test_torch_statement_fails_when_a_condition_fails(result):
    check = {"p=0.5": {"kept_max_rel_diff_from_x_over_1_minus_p": 0.0, "zeroed_fraction": 0.5,
                       "zeroed_z": 9.0, "eval_is_identity": True}}
    st = I.statements(result.numbers["per_seed"], result.numbers["reference_p"], 0.0,
                      result.numbers["effects"]["nll_damage_at_ref_p"],
                      result.numbers["effects"]["error_damage_at_ref_p"], check)
    torch_st = next(s for s in st if s.id == "inv.torch")
    assert [c.holds for c in torch_st.conditions] == [True, False, True]
    assert torch_st.verdict == "partly supported"
    same = next(s for s in st if s.id == "inv.same")
    bad = I.statements(result.numbers["per_seed"], result.numbers["reference_p"], 1.0,
                       result.numbers["effects"]["nll_damage_at_ref_p"],
                       result.numbers["effects"]["error_damage_at_ref_p"], check)
    assert same.conditions[0].holds and bad[0].verdict == "not supported"
