"""Baselines and the NUTS gold standard for the Bayesian group: values, not structure."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import norm

from dropkit.lab import bayes_gold as G
from dropkit.lab.base import VERDICTS
from dropkit.lab.posteriors import gaussian_linear_posterior, linear_predictive, nuts_samples

pytest.importorskip("pyro")  # the gold standard needs pyro-ppl (a dev dependency)

QUICK = G.Settings().quick()


@pytest.fixture(scope="module")
def quick_run():
    rng_before = torch.get_rng_state()
    out = G.measure(QUICK, seed=0)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's stream is untouched
    return out


def _data(s: G.Settings, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return G.make_data(s, s.n_per_cluster, gen)


# ---------------------------------------------------------------------------------------------
# the posterior machinery against closed forms
# ---------------------------------------------------------------------------------------------


def test_hand_written_gradient_equals_autograd():
    x, y = _data(QUICK)
    prec = G.prior_precision(QUICK)
    theta = torch.randn(3 * QUICK.hidden + 1, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(1)).requires_grad_()
    u = G.potential(theta, x, y, QUICK, prec)
    (grad,) = torch.autograd.grad(u, theta)
    ref_theta = theta.detach().clone().requires_grad_()
    # The naive formula, through autograd: every parameter of a real nn.Linear pair.
    net = G.make_net(QUICK, 0)
    torch.nn.utils.vector_to_parameters(ref_theta, net.parameters())
    resid = y - torch.tanh(x @ ref_theta[:QUICK.hidden].reshape(1, -1)
                           + ref_theta[QUICK.hidden:2 * QUICK.hidden]) @ ref_theta[
        2 * QUICK.hidden:3 * QUICK.hidden].reshape(-1, 1) - ref_theta[-1]
    ref = 0.5 * (resid**2).sum() / QUICK.noise_std**2 + 0.5 * (prec * ref_theta**2).sum()
    (ref_grad,) = torch.autograd.grad(ref, ref_theta)
    assert u.item() == pytest.approx(ref.item(), rel=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-10)
    # and the flat layout is that of the nn.Module: same outputs
    with torch.no_grad():
        torch.testing.assert_close(G.net_outputs(theta.detach()[None], x, QUICK.hidden)[0],
                                   net(x).reshape(-1))


def test_linear_posterior_equals_gaussian_conditioning():
    gen = torch.Generator().manual_seed(3)
    phi = torch.randn(15, 3, dtype=torch.float64, generator=gen)
    y = torch.randn(15, dtype=torch.float64, generator=gen)
    prior_var = torch.tensor([1.0, 4.0, 0.25], dtype=torch.float64)
    mean, cov = gaussian_linear_posterior(phi, y, noise_std=0.5, prior_precision=1 / prior_var)
    # Independent route: condition the joint Gaussian of (w, y) on y (data-space form).
    s0 = np.diag(prior_var.numpy())
    p, yy = phi.numpy(), y.numpy()
    k = p @ s0 @ p.T + 0.25 * np.eye(15)
    gain = s0 @ p.T @ np.linalg.inv(k)
    np.testing.assert_allclose(mean.numpy(), gain @ yy, rtol=1e-9)
    np.testing.assert_allclose(cov.numpy(), s0 - gain @ p @ s0, rtol=1e-9, atol=1e-12)


def test_nuts_matches_the_conjugate_posterior_predictive():
    """y = a + b x + N(0, 0.3^2), prior N(0, 1) on a and b: NUTS vs the closed form."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(20, dtype=torch.float64, generator=gen) * 2 - 1
    y = 0.5 - 1.0 * x + 0.3 * torch.randn(20, dtype=torch.float64, generator=gen)
    phi = torch.stack([torch.ones_like(x), x], 1)

    def potential(w: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((y - phi @ w) ** 2).sum() / 0.09 + 0.5 * (w**2).sum()

    draws = nuts_samples(potential, torch.zeros(2, dtype=torch.float64), warmup=100,
                         samples=400, seed=0)
    at = torch.tensor([[1.0, -3.0], [1.0, 0.0], [1.0, 3.0]], dtype=torch.float64)
    mean, cov = gaussian_linear_posterior(phi, y, noise_std=0.3, prior_precision=1.0)
    exact_mean, exact_var = linear_predictive(at, mean, cov)
    f = draws @ at.T  # (S, 3)
    exact_std = exact_var.sqrt()
    # MC error: sd / sqrt(S) for the mean (NUTS draws here are near independent); 5 of them,
    # and 15% on the std (its relative MC error is ~ 1 / sqrt(2 S) = 3.5%).
    assert torch.all((f.mean(0) - exact_mean).abs() <= 5 * exact_std / 400**0.5)
    torch.testing.assert_close(f.std(0), exact_std, rtol=0.15, atol=0)
    # A wrong posterior (noise 0.6 instead of 0.3) is far outside those tolerances.
    _, wrong_cov = gaussian_linear_posterior(phi, y, noise_std=0.6, prior_precision=1.0)
    assert torch.all(linear_predictive(at, mean, wrong_cov)[1].sqrt() > 1.5 * exact_std)


def test_last_layer_laplace_equals_laplace_torch():
    laplace = pytest.importorskip("laplace")
    s = G.Settings().quick()
    x, y = _data(s)
    net = G.fit(G.make_net(s, 0), x, y, s, 0)
    g = G.grid(s)
    cov = G.laplace_cov(net, x, y, s)
    phi = G.features(net, g)
    mine = ((phi @ cov) * phi).sum(1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y),
                                         batch_size=len(x))
    la = laplace.Laplace(net, "regression", subset_of_weights="last_layer",
                         hessian_structure="full", sigma_noise=s.noise_std,
                         prior_precision=float(G.prior_precision(s)[-1]))
    la.fit(loader)
    _, f_var = la(g, pred_type="glm")
    torch.testing.assert_close(mine, f_var.reshape(-1).detach(), rtol=1e-5, atol=1e-9)


def test_gaussian_distances_against_independent_formulas():
    m, s = torch.tensor([0.0, 1.0, -0.5]), torch.tensor([1.0, 0.5, 2.0])
    mr, sr = torch.tensor([0.3, 1.0, 0.5]), torch.tensor([0.7, 0.5, 1.0])
    d = G.gaussian_distances(m, s, mr, sr)
    kl = torch.distributions.kl_divergence(torch.distributions.Normal(mr, sr),
                                           torch.distributions.Normal(m, s))
    torch.testing.assert_close(d["kl"], kl)
    u = (np.arange(200_000) + 0.5) / 200_000  # W2 from the quantile functions
    for i in range(3):
        q = norm.ppf(u, float(m[i]), float(s[i])) - norm.ppf(u, float(mr[i]), float(sr[i]))
        assert float(d["w2"][i]) == pytest.approx(np.sqrt(np.mean(q**2)), rel=1e-3)


def test_region_masks_by_hand():
    x = torch.tensor([-3.0, -1.5, -1.0, -0.5, -0.2, 0.0, 0.7, 1.6])
    masks = G.region_masks(x, G.Settings())
    assert masks["data"].tolist() == [False, True, True, True, False, False, True, False]
    assert masks["gap"].tolist() == [False, False, False, False, True, True, False, False]
    assert masks["outside"].tolist() == [True, False, False, False, False, False, False, True]


# ---------------------------------------------------------------------------------------------
# the methods
# ---------------------------------------------------------------------------------------------


def test_ensemble_members_differ_and_their_mean_is_the_prediction():
    s = G.Settings().quick()
    x, y = _data(s)
    g = G.grid(s)
    pred, members = G.run_ensemble(x, y, g, s, seed=0)
    assert members.shape == (s.members, len(g))
    for i, j in itertools.combinations(range(s.members), 2):
        assert (members[i] - members[j]).abs().max() > 1e-2  # different initialisations
    naive = [sum(float(members[k, t]) for k in range(s.members)) / s.members
             for t in range(len(g))]
    torch.testing.assert_close(pred.mean, torch.tensor(naive, dtype=torch.float64))
    torch.testing.assert_close(pred.std**2, members.var(0, correction=0) + s.noise_std**2)


def test_hmc_uncertainty_grows_away_from_the_data(quick_run):
    std = quick_run["hmc"]["epistemic_std"]
    assert std["gap"] > 1.5 * std["data"]
    assert std["outside"] > 2.0 * std["data"]


def test_scaled_map_std_is_the_validation_rms(quick_run):
    s = QUICK
    curve = quick_run["curve"]
    gen = torch.Generator().manual_seed(0)
    x, y = G.make_data(s, s.n_per_cluster, gen)
    x_val, y_val = G.make_data(s, s.n_val_per_cluster, gen)
    net = G.fit(G.make_net(s, 0), x, y, s, 0)
    with torch.no_grad():
        rms = float(((y_val - net(x_val)) ** 2).mean().sqrt())
    assert curve["scaled_map_std"] == pytest.approx([rms] * len(curve["x"]), rel=1e-9)
    assert quick_run["methods"]["scaled_map"]["regions"]["data"]["epistemic_std"] == 0.0


def test_distances_and_costs_are_consistent(quick_run):
    c = {k: torch.tensor(v, dtype=torch.float64) for k, v in quick_run["curve"].items()}
    masks = G.region_masks(c["x"], QUICK)
    for name in G.METHODS:
        w2 = ((c[f"{name}_mean"] - c["hmc_mean"]) ** 2
               + (c[f"{name}_std"] - c["hmc_std"]) ** 2).sqrt()
        for region, mask in masks.items():
            got = quick_run["methods"][name]["regions"][region]["w2"]
            assert got == pytest.approx(float(w2[mask].mean()), rel=1e-9)
        m = quick_run["methods"][name]
        assert m["cost_s"] == pytest.approx(m["train_s"] + m["predict_s"])
        assert m["train_s"] > 0


# ---------------------------------------------------------------------------------------------
# the verdict rules on made-up numbers
# ---------------------------------------------------------------------------------------------


def _row(corr: float, w2: dict[str, float], cost: dict[str, float]) -> dict:
    methods = {m: {"cost_s": cost[m], "log_std_corr_with_hmc": corr,
                   "regions": {r: {"w2": w2[m]} for r in G.REGIONS}} for m in G.METHODS}
    return {"methods": methods, "hmc": {"cost_s": cost["hmc"]}}


CHEAP = {"mc_dropout": 1.0, "ensemble": 5.0, "laplace": 2.0, "scaled_map": 1.0, "hmc": 100.0}


@pytest.mark.parametrize(("w2", "cost", "verdict"), [
    # closer to HMC than the scaled MAP, cheap, not beaten by a method as cheap: supported
    ({"mc_dropout": 0.05, "ensemble": 0.04, "laplace": 0.06, "scaled_map": 0.20}, CHEAP,
     "supported"),
    # Laplace costs no more and is clearly closer: partly supported
    ({"mc_dropout": 0.05, "ensemble": 0.04, "laplace": 0.01, "scaled_map": 0.20},
     CHEAP | {"laplace": 0.5}, "partly supported"),
    # no closer than the scaled MAP: not supported
    ({"mc_dropout": 0.20, "ensemble": 0.04, "laplace": 0.06, "scaled_map": 0.19}, CHEAP,
     "not supported"),
    # as expensive as the ensemble: not supported
    ({"mc_dropout": 0.05, "ensemble": 0.04, "laplace": 0.06, "scaled_map": 0.20},
     CHEAP | {"mc_dropout": 4.0}, "not supported"),
])
def test_cheap_rule(w2, cost, verdict):
    jitter = [0.0, 0.001, -0.001]  # a small seed-to-seed spread, so se > 0
    rows = [_row(0.9, {m: v + j for m, v in w2.items()}, cost) for j in jitter]
    mc, cheap = G.judge(rows, G.Settings())
    assert (mc["id"], cheap["id"]) == ("bayes.mc", "bayes.cheap")
    assert cheap["verdict"] == verdict
    assert mc["verdict"] == "supported"  # correlation 0.9 on every seed


def test_rules_read_their_thresholds_from_the_settings():
    w2 = {"mc_dropout": 0.05, "ensemble": 0.04, "laplace": 0.06, "scaled_map": 0.20}
    rows = [_row(0.9, {m: v + j for m, v in w2.items()}, CHEAP) for j in (0.0, 0.001, -0.001)]
    assert [v["verdict"] for v in G.judge(rows, G.Settings())] == ["supported", "supported"]
    # 1 s is not <= 0.1 x the ensemble's 5 s; 0.9 is not > 0.95
    strict = G.Settings(max_cost_vs_ensemble=0.1, min_log_std_corr=0.95)
    assert [v["verdict"] for v in G.judge(rows, strict)] == ["not supported", "not supported"]
    # the W2 gain is 0.15 y units on every seed (se 0), not > 0.2: (a) fails, not supported
    assert G.judge(rows, G.Settings(min_w2_gain=0.2))[1]["verdict"] == "not supported"


def test_mc_rule_uses_the_correlation():
    w2 = {"mc_dropout": 0.05, "ensemble": 0.04, "laplace": 0.06, "scaled_map": 0.2}
    for corrs, verdict in (([0.9, 0.85, 0.95], "supported"), ([0.5, 0.6, 0.4], "partly supported"),
                           ([-0.2, 0.1, 0.0], "not supported")):
        got = G.judge([_row(c, w2, CHEAP) for c in corrs], G.Settings())[0]
        assert got["verdict"] == verdict
        assert got["numbers"]["mean"] == pytest.approx(sum(corrs) / 3)


def test_quick_run_verdicts_follow_their_rules(quick_run):
    mc, cheap = G.judge([quick_run], QUICK)
    assert mc["verdict"] in VERDICTS and cheap["verdict"] in VERDICTS
    corr = quick_run["methods"]["mc_dropout"]["log_std_corr_with_hmc"]
    assert mc["numbers"]["log_std_corr"] == [corr]
    assert -1.0 <= corr <= 1.0
    gain = G.away_w2(quick_run, "scaled_map") - G.away_w2(quick_run, "mc_dropout")
    assert cheap["numbers"]["w2_gain_over_scaled_map"] == [pytest.approx(gain)]


def test_figures_draw_the_measured_curves(quick_run):
    import matplotlib.pyplot as plt

    band, bars = G.figures([quick_run], QUICK)
    try:
        ax = band.axes[0]  # the first method's panel: HMC's mean is its first line
        assert list(ax.lines[0].get_ydata()) == pytest.approx(quick_run["curve"]["hmc_mean"])
        heights = [p.get_height() for p in bars.axes[0].patches][:len(G.REGIONS)]
        assert heights == pytest.approx([quick_run["methods"][G.METHODS[0]]["regions"][r]["w2"]
                                         for r in G.REGIONS])
    finally:
        plt.close(band)
        plt.close(bars)
