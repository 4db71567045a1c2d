"""Claim 2 (ensemble): every mask enumerated vs a brute-force loop, the NGM == weight-scaling
identity of a softmax layer, the MC curve by hand, and the quick run."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from dropkit.errors import DropkitValueError
from dropkit.lab import ensemble as E
from dropkit.lab.base import LabConfig
from tests.lab_claim_checks import check_claim, check_statements, rejudge

CFG = LabConfig(quick=True, seeds=(0, 1), progress=False)


@pytest.fixture(scope="module")
def result():
    return E.run(CFG)


def _layer(d: int = 5, b: int = 7, c: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = 1.5 * torch.randn(c, d, generator=g, dtype=torch.float64)
    bias = torch.randn(c, generator=g, dtype=torch.float64)
    x = torch.randn(b, d, generator=g, dtype=torch.float64)
    return w, bias, x


def test_all_masks_are_every_binary_vector_once() -> None:
    masks = E.all_masks(4)
    assert masks.shape == (16, 4)
    assert {tuple(int(v) for v in row) for row in masks} == set(itertools.product((0, 1),
                                                                                  repeat=4))


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9])
def test_mask_weights_are_the_bernoulli_probabilities(p: float) -> None:
    masks = E.all_masks(3)
    w = E.mask_weights(masks, p)
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-12)
    for row, wi in zip(masks, w, strict=True):
        ref = math.prod((1 - p) if m else p for m in row.tolist())
        assert float(wi) == pytest.approx(ref, abs=1e-15)


def test_subnetwork_logits_match_a_loop_over_masks() -> None:
    w, b, x = _layer()
    p = 0.3
    masks = E.all_masks(5)
    got = E.subnetwork_logits(w, b, x, masks, p)
    for k, m in enumerate(masks):
        ref = torch.nn.functional.linear(x * m / (1 - p), w, b)
        torch.testing.assert_close(got[k], ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.7])
def test_geometric_mean_of_all_subnetworks_is_weight_scaling(p: float) -> None:
    """Baldi & Sadowski (2013): for one softmax layer NGM == softmax(W x + b), exactly."""
    w, b, x = _layer(d=8, b=20, c=5, seed=1)
    masks = E.all_masks(8)
    ngm = E.geometric_mean_probs(E.subnetwork_logits(w, b, x, masks, p),
                                 E.mask_weights(masks, p))
    ws = torch.softmax(x @ w.T + b, dim=-1)
    torch.testing.assert_close(ngm, ws, rtol=0, atol=1e-12)
    # ...and the arithmetic mean is a different predictor (measurably so here)
    am = E.arithmetic_mean_probs(E.subnetwork_logits(w, b, x, masks, p),
                                 E.mask_weights(masks, p))
    assert float(E.total_variation(am, ws).mean()) > 1e-2


def test_means_match_a_brute_force_product_and_sum() -> None:
    w, b, x = _layer(d=4, b=3, c=3, seed=2)
    p = 0.4
    masks = E.all_masks(4)
    weights = E.mask_weights(masks, p)
    logits = E.subnetwork_logits(w, b, x, masks, p)
    for i in range(x.shape[0]):
        geo = [1.0] * 3
        ari = [0.0] * 3
        for k in range(len(masks)):
            probs = torch.softmax(logits[k, i], dim=-1).tolist()
            for c in range(3):
                geo[c] *= probs[c] ** float(weights[k])
                ari[c] += float(weights[k]) * probs[c]
        z = sum(geo)
        ngm = E.geometric_mean_probs(logits, weights)[i].tolist()
        am = E.arithmetic_mean_probs(logits, weights)[i].tolist()
        assert ngm == pytest.approx([g / z for g in geo], abs=1e-12)
        assert am == pytest.approx(ari, abs=1e-12)


def test_mc_curve_averages_disjoint_blocks() -> None:
    # 4 samples, 2 inputs, 2 classes; target class 0 for both
    probs = torch.tensor([[[0.9, 0.1], [0.4, 0.6]],
                          [[0.6, 0.4], [0.8, 0.2]],
                          [[0.3, 0.7], [0.7, 0.3]],
                          [[0.8, 0.2], [0.2, 0.8]]], dtype=torch.float64)
    y = torch.tensor([0, 0])
    errs, nlls = E.mc_curve(probs, y, (1, 2, 4))
    # S=1: per-sample errors 50, 0, 50, 50 -> 37.5; S=2: blocks {0,1}, {2,3}: means
    # [.75,.6] and [.55,.45] -> 0 and 50 -> 25; S=4: mean [.65, .525] -> 0
    assert errs == pytest.approx([37.5, 25.0, 0.0])
    nll1 = sum(-(math.log(a) + math.log(b)) / 2 for a, b in ((.9, .4), (.6, .8), (.3, .7),
                                                            (.8, .2))) / 4
    nll4 = -(math.log(0.65) + math.log(0.525)) / 2
    assert nlls[0] == pytest.approx(nll1) and nlls[2] == pytest.approx(nll4)


def test_pca_features_are_standardised_on_train() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 12, generator=g) @ torch.randn(12, 12, generator=g)
    tr, te = E.pca_features(x, x[:10], 3)
    assert tr.shape == (300, 3) and te.shape == (10, 3)
    torch.testing.assert_close(tr.double().std(dim=0), torch.ones(3, dtype=torch.float64),
                               atol=1e-4, rtol=0)
    cov = torch.cov(tr.double().T)
    assert float((cov - torch.diag(cov.diag())).abs().max()) < 1e-4  # uncorrelated


def test_quick_run_structure(result) -> None:
    check_claim(result, CFG, "ensemble")


def test_quick_run_softmax_identity_is_tight(result) -> None:
    """The trained layer reproduces the identity to float64 precision (the reference check)."""
    assert result.numbers["softmax_max_abs_ngm_minus_ws"] < 1e-12
    for rs in result.numbers["softmax_layer"].values():
        assert max(rs["max_abs_ws64_minus_model"]) < 1e-5  # float32 model agrees with float64
        assert rs["err_ngm_pct"] == rs["err_ws_pct"]


def test_quick_run_verdict_follows_the_stated_rule(result) -> None:
    n = result.numbers
    i = len(n["deep"]["s_grid"]) - 1
    approx = [E.APPROX_PP - abs(ws - mc[i])
              for ws, mc in zip(n["deep"]["err_ws_pct"], n["deep"]["err_mc_pct"], strict=True)]
    exact = n["softmax_max_abs_ngm_minus_ws"] <= E.EXACT_TOL
    part = rejudge(approx, 0.0)
    expected = ("supported" if exact and part == "supported" else
                "partly supported" if exact else "not supported")
    check_statements(result, ["ens.subnets", "ens.scaling"])
    st = {s.id: s for s in result.statements}
    assert st["ens.scaling"].verdict == expected  # the first edition's rule, now one statement
    subnets = [a[0] - a[i] for a in n["deep"]["nll_mc"]]  # one mask minus S masks
    assert st["ens.subnets"].numbers["per_seed"] == pytest.approx(subnets)
    gains = [ws - mc[i] for ws, mc in zip(n["deep"]["nll_ws"], n["deep"]["nll_mc"], strict=True)]
    assert n["mc_beats_ws_nll"]["verdict"] == rejudge(gains, E.NLL_MARGIN)


def test_verdict_rule_cases() -> None:
    assert E.verdict(1e-15, [0.8, 0.9, 0.85])[0] == "supported"
    assert E.verdict(1e-15, [-2.0, -1.0, -1.5])[0] == "partly supported"
    assert E.verdict(1e-3, [0.8, 0.9, 0.85])[0] == "not supported"


def test_softmax_layer_is_reproducible() -> None:
    a = E.softmax_layer(3, 0.5, E.QUICK)
    b = E.softmax_layer(3, 0.5, E.QUICK)
    assert a == b


def test_empty_seeds_rejected() -> None:
    with pytest.raises(DropkitValueError, match="cfg.seeds"):
        E.run(LabConfig(quick=True, seeds=(), progress=False))
