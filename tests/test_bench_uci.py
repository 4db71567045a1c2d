"""The batched MC-dropout UCI benchmark: batched == alone, streaming MC == direct, protocol."""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dropkit.bench.uci_batched import (
    BatchedMLP,
    drop_positions,
    glorot_init,
    mc_evaluate,
    train_batched,
)
from dropkit.bench.uci_config import PUBLISHED_2018, UCIConfig
from dropkit.bench.uci_protocol import UCIResult, run_uci, standard_error
from dropkit.bench.uci_report import CSV_COLUMNS, within_2se, within_2se_published
from dropkit.datasets.uci import load_uci
from dropkit.errors import DropkitTypeError, DropkitValueError
from tests.native import require_native
from tests.shared_data import SHARED, needs_shared


def _problem(K: int = 4, N: int = 70, D: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(K, N, D, generator=g, dtype=torch.float64)
    y = torch.randn(K, N, generator=g, dtype=torch.float64)
    p = torch.tensor([0.0, 0.05, 0.1, 0.3][:K], dtype=torch.float64)
    reg = torch.tensor([1e-3, 1e-2, 0.0, 5e-2][:K], dtype=torch.float64)
    return X, y, p, reg


@pytest.mark.parametrize(("backend", "fused"),
                         [("torch", True), ("torch", False), ("native", None)])
@pytest.mark.parametrize("k", [1, 3])
def test_network_in_batch_equals_network_trained_alone(k: int, backend: str, fused: bool | None,
                                                       monkeypatch) -> None:
    """Network k of a batch of 4 == torch.nn + autograd + torch.optim.Adam fed the same
    minibatches and dropout masks (float64); the torch backend with torch's fused Adam kernel
    and without it (torch releases that lack the private op take the elementwise path), and
    the native (C) backend."""
    if backend == "native":
        require_native()
    if fused is False:
        monkeypatch.delattr(torch, "_fused_adam_", raising=False)
    X, y, p, reg = _problem()
    H, epochs, batch = 8, 3, 32  # N = 70: batches of 32, 32 and 6
    g = torch.Generator().manual_seed(1)
    model = glorot_init(4, X.shape[2], H, generator=g, dtype=torch.float64)
    start = model.select(k)
    record: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def on_step(step: int, idx: torch.Tensor, m1: torch.Tensor, m2: torch.Tensor) -> None:
        record.append((idx[k].clone(), m1[k].clone(), m2[k].clone()))

    train_batched(model, X, y, p, reg, epochs=epochs, batch_size=batch, lr=1e-2,
                  generator=g, on_step=on_step, backend=backend)
    assert len(record) == epochs * 3

    lin1 = torch.nn.Linear(X.shape[2], H).double()
    lin2 = torch.nn.Linear(H, 1).double()
    with torch.no_grad():
        lin1.weight.copy_(start.w1[0].T)
        lin1.bias.copy_(start.b1[0, 0])
        lin2.weight.copy_(start.w2[0].T)
        lin2.bias.copy_(start.b2[0, 0])
    opt = torch.optim.Adam([*lin1.parameters(), *lin2.parameters()], lr=1e-2)
    keep = 1.0 - float(p[k])
    for idx, m1, m2 in record:
        xb, yb = X[k, idx], y[k, idx]
        h = torch.relu(lin1(xb * m1 / keep)) * m2 / keep
        out = lin2(h).squeeze(-1)
        loss = ((out - yb) ** 2).mean() + float(reg[k]) * (
            lin1.weight.pow(2).sum() + lin2.weight.pow(2).sum())
        opt.zero_grad()
        loss.backward()
        opt.step()
    trained = model.select(k)
    torch.testing.assert_close(trained.w1[0], lin1.weight.detach().T, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(trained.b1[0, 0], lin1.bias.detach(), rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(trained.w2[0], lin2.weight.detach().T, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(trained.b2[0, 0], lin2.bias.detach(), rtol=1e-9, atol=1e-11)


def test_minibatches_cover_every_row_once_per_epoch_and_differ_between_networks() -> None:
    X, y, p, reg = _problem(N=50)
    g = torch.Generator().manual_seed(2)
    seen: list[torch.Tensor] = []
    masks: list[torch.Tensor] = []

    def on_step(step: int, idx: torch.Tensor, m1: torch.Tensor, m2: torch.Tensor) -> None:
        seen.append(idx.clone())
        masks.append(m2.clone())

    model = glorot_init(4, 3, 6, generator=g, dtype=torch.float64)
    train_batched(model, X, y, p, reg, epochs=1, batch_size=16, generator=g, on_step=on_step)
    order = torch.cat(seen, dim=1)  # (K, N)
    for row in order:
        assert sorted(row.tolist()) == list(range(50))
    assert not torch.equal(order[0], order[1])
    # masks are binary; p = 0 keeps everything; p = 0.3 drops about 30 %
    m = torch.cat(masks, dim=1)  # (K, N, H)
    assert set(m.unique().tolist()) <= {0.0, 1.0}
    assert bool(m[0].all())
    assert abs(1.0 - float(m[3].mean()) - 0.3) < 0.06  # 300 draws: 4.7 sigma


def test_independent_initialisations() -> None:
    g = torch.Generator().manual_seed(3)
    model = glorot_init(3, 5, 7, generator=g)
    assert not torch.equal(model.w1[0], model.w1[1])
    bound = math.sqrt(6 / 12)
    assert float(model.w1.abs().max()) <= bound
    assert float(model.b1.abs().max()) == 0.0


def _direct_mc(model: BatchedMLP, X, y, p, y_scale, tau, T, seed):
    """All T passes stacked, then a plain logsumexp (float64); the masks come from
    ``drop_positions`` drawn in the same order as a one-pass-per-chunk ``mc_evaluate``: per
    pass and network one sequence of M (D + H) entries, the M D input ones first."""
    g = torch.Generator().manual_seed(seed)
    K, M, D = X.shape
    H = model.w1.shape[2]
    keep = (1 - p).view(K, 1, 1)
    outs = []
    for _ in range(T):
        m = torch.ones(K * M * (D + H), dtype=X.dtype)
        m[drop_positions(M * (D + H), p, g)] = 0
        m = m.view(K, M * (D + H))
        m1, m2 = m[:, : M * D].reshape(K, M, D), m[:, M * D :].reshape(K, M, H)
        h = torch.relu(torch.bmm(X * m1 / keep, model.w1) + model.b1)
        outs.append((torch.bmm(h * m2 / keep, model.w2) + model.b2)[..., 0])
    yhat = torch.stack(outs, 1) * y_scale.view(K, 1, 1)  # (K, T, M) original units
    yo = (y * y_scale.view(K, 1)).unsqueeze(1)
    ll = (torch.logsumexp(-0.5 * tau.view(K, 1, 1) * (yo - yhat) ** 2, dim=1) - math.log(T)
          - 0.5 * math.log(2 * math.pi) + 0.5 * torch.log(tau).view(K, 1))
    rmse = ((yo[:, 0] - yhat.mean(1)) ** 2).mean(1).sqrt()
    return rmse, ll.mean(1)


@pytest.mark.parametrize("backend", ["torch", "native"])
@pytest.mark.parametrize("chunk_elements", [1, 10**9])
def test_streaming_mc_equals_direct_computation(chunk_elements: int, backend: str) -> None:
    """Streaming (one pass per chunk) == stacking all T passes; one big chunk agrees in
    distribution."""
    if backend == "native":
        require_native()
    K, M, D, H, T = 3, 11, 4, 6, 40
    g = torch.Generator().manual_seed(4)
    model = glorot_init(K, D, H, generator=g, dtype=torch.float64)
    model.b1 += 0.1
    X = torch.randn(K, M, D, generator=g, dtype=torch.float64)
    y = torch.randn(K, M, generator=g, dtype=torch.float64)
    p = torch.tensor([0.05, 0.1, 0.5], dtype=torch.float64)
    y_scale = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    tau = torch.tensor([0.5, 3.0, 40.0], dtype=torch.float64)
    X_before = X.clone()
    if chunk_elements == 1:
        stats = mc_evaluate(model, X, y, p, y_scale=y_scale, tau=tau, n_samples=T,
                            generator=torch.Generator().manual_seed(9), chunk_elements=1,
                            backend=backend)
        rmse, ll = _direct_mc(model, X, y, p, y_scale, tau, T, seed=9)
        torch.testing.assert_close(stats.rmse, rmse, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(stats.ll, ll, rtol=1e-10, atol=1e-12)
    else:
        # other chunking, other masks: equal in distribution, compare T = 20000 vs 1000 loosely
        big = mc_evaluate(model, X, y, p, y_scale=y_scale, tau=tau, n_samples=20000,
                          generator=torch.Generator().manual_seed(9), chunk_elements=1 << 30,
                          backend=backend)
        rmse, ll = _direct_mc(model, X, y, p, y_scale, tau, 1000, seed=10)
        torch.testing.assert_close(big.rmse, rmse, rtol=0.05, atol=0.02)
        torch.testing.assert_close(big.ll, ll, rtol=0.05, atol=0.05)
    assert torch.equal(X, X_before)  # inputs are never written to
    # without dropout (p = 0) every pass is the deterministic network
    zero = torch.zeros(K, dtype=torch.float64)
    s0 = mc_evaluate(model, X, y, zero, y_scale=y_scale, tau=tau, n_samples=5,
                     generator=g, chunk_elements=chunk_elements, backend=backend)
    torch.testing.assert_close(s0.rmse, s0.rmse_standard, rtol=1e-12, atol=1e-12)


def test_drop_positions_are_iid_bernoulli() -> None:
    """Geometric-gap sampling: in range, unique, P(drop) = p at every position (also the
    first), and neighbours independent; tolerances are 5 standard deviations."""
    g = torch.Generator().manual_seed(5)
    p = torch.tensor([0.0, 0.3, 0.05])
    n, reps = 7, 4000
    counts = torch.zeros(3, n)
    pairs = torch.zeros(3)
    for _ in range(reps):
        flat = drop_positions(n, p, g)
        assert flat.unique().numel() == flat.numel()
        if flat.numel():
            assert int(flat.min()) >= 0 and int(flat.max()) < 3 * n
        mask = torch.zeros(3 * n)
        mask[flat] = 1
        mask = mask.view(3, n)
        counts += mask
        pairs += (mask[:, :-1] * mask[:, 1:]).mean(1)
    freq = counts / reps
    assert float(freq[0].max()) == 0.0
    for k, q in ((1, 0.3), (2, 0.05)):
        sd = math.sqrt(q * (1 - q) / reps)
        assert float((freq[k] - q).abs().max()) < 5 * sd
        assert abs(float(pairs[k]) / reps - q * q) < 5 * math.sqrt(q * q / (reps * (n - 1)))
    big = drop_positions(200_000, torch.tensor([0.1]), g)  # long rows need many gaps
    assert abs(big.numel() / 200_000 - 0.1) < 5 * math.sqrt(0.09 / 200_000)


def test_mc_ll_matches_hand_computation_for_a_constant_network() -> None:
    """All weights 0 and bias c: yhat = c * y_scale; LL is the Gaussian log density."""
    K, M, D, H = 1, 5, 2, 3
    model = BatchedMLP(torch.zeros(K, D, H, dtype=torch.float64),
                       torch.zeros(K, 1, H, dtype=torch.float64),
                       torch.zeros(K, H, 1, dtype=torch.float64),
                       torch.full((K, 1, 1), 0.5, dtype=torch.float64))
    y = torch.tensor([[0.0, 1.0, -1.0, 2.0, 0.5]], dtype=torch.float64)
    stats = mc_evaluate(model, torch.ones(K, M, D, dtype=torch.float64), y,
                        torch.tensor([0.1], dtype=torch.float64),
                        y_scale=torch.tensor([2.0], dtype=torch.float64),
                        tau=torch.tensor([0.25], dtype=torch.float64), n_samples=7,
                        generator=torch.Generator().manual_seed(0))
    resid = (y[0] - 0.5).numpy() * 2.0
    expect = np.mean(-0.5 * 0.25 * resid**2 - 0.5 * np.log(2 * np.pi) + 0.5 * np.log(0.25))
    assert float(stats.ll[0]) == pytest.approx(expect, rel=1e-12)
    assert float(stats.rmse[0]) == pytest.approx(np.sqrt(np.mean(resid**2)), rel=1e-12)


def test_config_defaults_are_the_published_protocol_and_validated() -> None:
    c = UCIConfig()
    assert (c.epoch_multiplier, c.batch_size, c.lr, c.lengthscale, c.mc_samples,
            c.train_fraction) == (100, 128, 1e-3, 1e-2, 10_000, 0.8)
    assert c.total_epochs(40) == 4000 and c.total_epochs(20) == 2000
    assert UCIConfig.quick().total_epochs(40) == 5
    with pytest.raises(DropkitValueError, match="`mc_samples`"):
        UCIConfig(mc_samples=0)
    with pytest.raises(DropkitTypeError, match="`epochs`"):
        UCIConfig(epochs=2.5)  # type: ignore[arg-type]
    with pytest.raises(DropkitValueError, match="`train_fraction`"):
        UCIConfig(train_fraction=1.0)
    with pytest.raises(DropkitValueError, match="`dropout_rates`"):
        UCIConfig(dropout_rates=(0.1, 1.0))
    with pytest.raises(DropkitValueError, match="`tau_values`"):
        UCIConfig(tau_values=(0.0,))


def test_standard_error_and_two_se_rule() -> None:
    v = np.array([1.0, 2.0, 4.0, 5.0])
    assert standard_error(v) == pytest.approx(np.std(v) / 2.0)
    assert within_2se(1.0, 0.1, 1.2, 0.05) is True  # 0.2 <= 2 * 0.1118
    assert within_2se(1.0, 0.1, 1.3, 0.05) is False
    assert within_2se(1.0, 0.1, None, None) is None
    assert within_2se_published(1.0, 1.09, 0.05) is True
    assert within_2se_published(1.0, 1.2, 0.05) is False
    assert set(PUBLISHED_2018) == {"bostonHousing", "energy", "naval-propulsion-plant",
                                   "power-plant", "wine-quality-red"}


@needs_shared
def test_quick_protocol_on_boston_picks_by_validation_ll_and_is_reproducible() -> None:
    ds = load_uci("bostonHousing", SHARED, n_splits=2)
    cfg = UCIConfig.quick(epochs=3, mc_samples=50, dropout_rates=(0.01, 0.1),
                          tau_values=(0.1, 0.2))
    a = run_uci(ds, cfg)
    b = run_uci(ds, cfg)
    assert [s.__dict__ for s in a.splits] == [s.__dict__ for s in b.splits]
    assert [s.split for s in a.splits] == [0, 1]
    for s in a.splits:
        best = int(np.argmax(s.val_ll))
        assert (s.p, s.tau) == a.grid[best]
        assert np.isfinite(s.rmse) and np.isfinite(s.ll) and s.rmse > 0
    assert a.rmse_se == pytest.approx(np.std([s.rmse for s in a.splits]) / np.sqrt(2))
    c = run_uci(ds, cfg, splits_per_batch=1)
    assert [s.split for s in c.splits] == [0, 1]
    again = UCIResult.from_dict(a.to_dict())
    assert again.rmse_mean == a.rmse_mean and again.config == a.config
    with pytest.raises(DropkitValueError, match="`splits`"):
        run_uci(ds, cfg, splits=[5])


@needs_shared
def test_short_training_beats_predicting_the_mean() -> None:
    """A statistical sanity check: 60 epochs on boston split 0 give a test RMSE well under
    the std of y (about 9.2), which predicting the training mean would score."""
    ds = load_uci("bostonHousing", SHARED, n_splits=1)
    cfg = UCIConfig.quick(epochs=60, n_splits=1, mc_samples=100, dropout_rates=(0.05,),
                          tau_values=(0.1,))
    r = run_uci(ds, cfg)
    y_test = ds.y[ds.splits[0][1]]
    assert r.splits[0].rmse < 0.6 * float(np.std(y_test))


@needs_shared
def test_cli_writes_csv_and_markdown(tmp_path: Path, capsys) -> None:
    from dropkit.commands.bench import register

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["bench", "uci", "--root", str(SHARED), "--datasets",
                              "bostonHousing", "--out", str(tmp_path), "--quick",
                              "--epochs", "2", "--mc-samples", "20"])
    assert args.func(args) == 0
    rows = list(csv.DictReader((tmp_path / "uci.csv").open()))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[0]["dataset"] == "bostonHousing" and rows[0]["n_splits"] == "2"
    assert rows[0]["published_rmse"] == "2.903623"
    md = (tmp_path / "uci.md").read_text()
    assert "bostonHousing" in md and "mc_samples" in md and "torch" in md
    assert rows[0]["backend"] in ("native", "torch")
    assert "not the published protocol** (changed: epochs=2, n_splits=2, mc_samples=20)" in md
    bad = parser.parse_args(["bench", "uci", "--root", str(tmp_path / "nope"), "--datasets",
                             "bostonHousing", "--out", str(tmp_path), "--quick"])
    assert bad.func(bad) == 2
    bad = parser.parse_args(["bench", "uci", "--root", str(SHARED), "--datasets",
                             "bostonHousing", "--out", str(tmp_path), "--backend", "gpu"])
    assert bad.func(bad) == 2
    assert "`--backend`" in capsys.readouterr().err
