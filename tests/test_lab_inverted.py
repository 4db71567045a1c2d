"""Claim 4 (inverted vs classic scaling): the conversion identity and no scaling vs hand
computation; one seed's measurements vs an independent evaluation and in any order; the judge on
hand-made measurements vs hand-computed effects and verdicts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score
from torch import nn

from dropkit.datasets.digits import load_digits
from dropkit.lab import inverted as I
from dropkit.lab.base import LabConfig
from dropkit.lab.train import seeded
from dropkit.mc.mcdropout import MCDropout
from tests.lab_claim_checks import check_claim, check_statements, rejudge, verdict_by_hand
from tests.zoo.small import assert_same_state, snapshot

CFG = LabConfig(quick=True, seeds=(0, 1), progress=False)
QUICK = I.SETTINGS.quick()


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


def test_conversion_is_exact_in_the_run(result):
    assert result.numbers["identity_holds"] is True
    for seed_rows in result.numbers["per_seed"]:
        for r in seed_rows["by_p"]:
            assert r["conversion_rel_diff"] <= 1e-5
            assert r["conversion_mc_rel_diff"] <= 1e-5
            # the reparameterised training follows the same trajectory up to rounding
            assert r["trained_exact_rel_diff"] <= 1e-4


def test_verdict_is_recomputed_from_the_effects(result):
    check_claim(result, CFG, "inverted")
    assert result.config == {**dataclasses.asdict(QUICK), "quick": True}
    damage = rejudge(result.numbers["effects"]["nll_damage_at_ref_p"], QUICK.min_nll_damage)
    error = rejudge(result.numbers["effects"]["error_damage_at_ref_p"],
                    QUICK.min_error_damage)
    check_statements(result, ["inv.same", "inv.torch", "inv.needed"])
    st = {s.id: s for s in result.statements}
    assert st["inv.needed"].numbers["nll_damage"]["per_seed"] == pytest.approx(
        result.numbers["effects"]["nll_damage_at_ref_p"])
    assert st["inv.needed"].verdict == verdict_by_hand([damage, error])
    # [inv.same]: the identity holds (previous test); part (b) from the naive nets' errors
    ref = result.numbers["reference_p"]
    naive = [QUICK.naive_tolerance - abs(r["inverted_naive"]["error"] - r["classic"]["error"])
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
    a = I.adam_train(_trained_classic(0.3), x, y, QUICK, seed=4)
    b = I.adam_train(_trained_classic(0.3), x, y, QUICK, seed=4)
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


def test_shared_is_the_torch_check_of_the_settings(result):
    check = I.shared(QUICK, (0, 1))["torch_check"]
    assert check == I.torch_dropout_check(QUICK.ps, QUICK.torch_check_n, QUICK.torch_check_seed)
    assert next(s for s in result.statements if s.id == "inv.torch").numbers == check


def test_measure_matches_an_independent_evaluation(result):
    """Seed 0 of the run measured again after seed 1 and a dirtied global stream (bitwise the
    same), and its nets at p = 0.5 evaluated by hand: the classic net's logits from its weights
    with the (1-p) factors and without them, NLL by torch's cross-entropy, error by sklearn."""
    torch.manual_seed(999)
    torch.rand(3)
    again = [I.measure(QUICK, 1), I.measure(QUICK, 0)][::-1]
    assert again == result.numbers["per_seed"]

    p, d = 0.5, load_digits(seed=0)
    x, y, xt, yt = d.flat_train.double(), d.y_train, d.flat_test.double(), d.y_test
    with seeded(0):
        classic = I.build(64, QUICK.hidden, 10, p, "classic").double()
    I.adam_train(classic, x, y, QUICK, 0)
    w = [(m.weight.detach(), m.bias.detach()) for m in classic if isinstance(m, nn.Linear)]

    def logits(scale: float) -> torch.Tensor:
        h = torch.relu(xt @ w[0][0].T + w[0][1]) * scale
        h = torch.relu(h @ w[1][0].T + w[1][1]) * scale
        return h @ w[2][0].T + w[2][1]

    row = next(r for r in result.numbers["per_seed"][0]["by_p"] if r["p"] == p)
    for kind, scale in (("classic", 1 - p), ("no_scaling", 1.0)):
        z = logits(scale)
        assert row[kind]["nll"] == pytest.approx(float(F.cross_entropy(z, yt)), abs=1e-12)
        assert row[kind]["error"] == pytest.approx(
            1 - accuracy_score(yt.numpy(), z.argmax(-1).numpy()), abs=1e-12)
        assert row[kind]["confidence"] == pytest.approx(
            float(z.softmax(-1).max(-1).values.mean()), abs=1e-12)


def _metrics(error: float, nll: float) -> dict[str, float]:
    return {"error": error, "nll": nll, "ece": 0.02, "confidence": 0.9, "logit_scale": 3.0}


def _row(p: float, classic: tuple[float, float], naive_error: float,
         no_scaling: tuple[float, float], conversion: float = 1e-16) -> dict:
    return {"p": p, "conversion_rel_diff": conversion, "conversion_mc_rel_diff": 2e-16,
            "trained_exact_rel_diff": 1e-9, "trained_naive_rel_diff": 0.3,
            "trained_naive_prediction_agreement": 0.95, "classic": _metrics(*classic),
            "inverted_exact": _metrics(*classic),
            "inverted_naive": _metrics(naive_error, classic[1] + 0.01),
            "no_scaling": _metrics(*no_scaling)}


# Three seeds at p = 0.2 and 0.5 (the reference): (classic error, NLL), the naive inverted net's
# error, (error, NLL) without scaling; chosen so that the effects below are computed by hand.
_AT_REF = [((0.05, 0.20), 0.055, (0.10, 0.50)), ((0.06, 0.25), 0.040, (0.12, 0.60)),
           ((0.04, 0.15), 0.045, (0.09, 0.45))]
_TORCH_OK = {f"p={p:g}": {"kept_max_rel_diff_from_x_over_1_minus_p": 1e-16,
                          "zeroed_fraction": p, "zeroed_z": 0.5, "eval_is_identity": True}
             for p in (0.2, 0.5)}


def _hand_per_seed(conversion: float = 1e-16) -> list[dict]:
    return [{"seed": k, "by_p": [_row(0.2, (0.03, 0.1), 0.03, (0.04, 0.12)),
                                 _row(0.5, *args, conversion=conversion if k == 2 else 1e-16)]}
            for k, args in enumerate(_AT_REF)]


def _hand_verdict(effects: list[float], t: float) -> str:
    m = sum(effects) / len(effects)
    se = (sum((e - m) ** 2 for e in effects) / (len(effects) - 1) / len(effects)) ** 0.5
    return ("supported" if m - 2 * se > t else
            "partly supported" if m > 0 and m + 2 * se > t else "not supported")


def test_judge_on_hand_made_measurements():
    judged = I.judge(QUICK, _hand_per_seed(), {"torch_check": _TORCH_OK})
    n = judged.numbers
    nll, err = [0.30, 0.35, 0.30], [0.05, 0.06, 0.05]
    assert n["effects"]["nll_damage_at_ref_p"] == pytest.approx(nll)
    assert n["effects"]["error_damage_at_ref_p"] == pytest.approx(err)
    assert n["reference_p"] == 0.5 and n["identity_holds"] is True
    st = {s.id: s for s in judged.statements}
    assert st["inv.needed"].verdict == "supported" == _hand_verdict(nll, 0.05) == \
        _hand_verdict(err, 0.01)
    # the naive net's error is 0.5, 2 and 0.5 pp from the classic one's: 1 pp - |d| averages 0
    naive = [0.005, -0.01, 0.005]
    assert st["inv.same"].numbers["naive_training"]["per_seed"] == pytest.approx(naive)
    assert _hand_verdict(naive, 0.0) == "not supported"
    assert st["inv.same"].verdict == "partly supported"  # the identity holds, (b) does not
    assert st["inv.torch"].verdict == "supported"
    assert "The statements disagree" in judged.key_number
    assert n["summary"]["classic_error"][1] == pytest.approx(
        {"p": 0.5, "mean": 0.05, "se": np.std([0.05, 0.06, 0.04], ddof=1) / 3 ** 0.5})
    assert n["summary"]["worst_conversion_mc_rel_diff"] == 2e-16


def test_judge_fails_the_identity_and_torch_conditions():
    bad = I.judge(QUICK, _hand_per_seed(conversion=1e-3), {"torch_check": _TORCH_OK})
    same = next(s for s in bad.statements if s.id == "inv.same")
    assert bad.numbers["identity_holds"] is False and same.verdict == "not supported"
    assert same.numbers["worst_conversion_rel_diff"] == 1e-3
    # a looser tolerance from the settings accepts the same difference
    loose = dataclasses.replace(QUICK, identity_tol=1e-2)
    assert I.judge(loose, _hand_per_seed(conversion=1e-3), {"torch_check": _TORCH_OK}
                   ).numbers["identity_holds"] is True
    check = {"p=0.5": {"kept_max_rel_diff_from_x_over_1_minus_p": 0.0, "zeroed_fraction": 0.5,
                       "zeroed_z": 9.0, "eval_is_identity": True}}
    torch_st = I.torch_statement(QUICK, check)
    assert [c.holds for c in torch_st.conditions] == [True, False, True]
    assert torch_st.verdict == "partly supported"
    assert I.torch_statement(dataclasses.replace(QUICK, torch_max_z=10.0), check).verdict == \
        "supported"


def test_reference_p_is_the_last_rate_when_the_settings_lack_it():
    assert I.reference_p(QUICK) == 0.5
    assert I.reference_p(dataclasses.replace(QUICK, ps=(0.2, 0.7, 0.3))) == 0.3
