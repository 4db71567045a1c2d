"""Claim 5 (transformer placement): the stacked model against a plain one-model reference,
the independence of the stacked models, the dropout sites, the corpus, and a quick run."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from dropkit.errors import DropkitValueError
from dropkit.experiments.claim import group_verdict
from dropkit.lab import transformer as T
from dropkit.lab.base import VERDICTS, LabConfig, judge
from tests.lab_claim_checks import check_statements


def reference_forward(w: dict[str, torch.Tensor], idx: torch.Tensor, n_head: int) -> torch.Tensor:
    """One pre-LN GPT written plainly (float64, per-head loop, no dropout): logits (B, T, V)."""
    w = {k: v.double() for k, v in w.items()}
    n_layer = sum(1 for k in w if k.endswith(".qkv.w"))
    b, t = idx.shape
    x = w["tok"][idx] + w["pos"][:t]

    def ln(z: torch.Tensor, name: str) -> torch.Tensor:
        mu = z.mean(-1, keepdim=True)
        var = z.var(-1, unbiased=False, keepdim=True)
        return (z - mu) / torch.sqrt(var + 1e-5) * w[name + ".g"] + w[name + ".b"]

    for i in range(n_layer):
        h = ln(x, f"h{i}.ln1")
        qkv = h @ w[f"h{i}.qkv.w"] + w[f"h{i}.qkv.b"]
        c = x.shape[-1]
        q, k, v = qkv[..., :c], qkv[..., c:2 * c], qkv[..., 2 * c:]
        hs = c // n_head
        heads = []
        for hd in range(n_head):
            sl = slice(hd * hs, (hd + 1) * hs)
            scores = q[..., sl] @ k[..., sl].transpose(-2, -1) / math.sqrt(hs)
            scores = scores.masked_fill(torch.ones(t, t).triu(1).bool(), float("-inf"))
            heads.append(scores.softmax(-1) @ v[..., sl])
        x = x + torch.cat(heads, -1) @ w[f"h{i}.proj.w"] + w[f"h{i}.proj.b"]
        h = F.gelu(ln(x, f"h{i}.ln2") @ w[f"h{i}.fc.w"] + w[f"h{i}.fc.b"])
        x = x + h @ w[f"h{i}.fc_out.w"] + w[f"h{i}.fc_out.b"]
    return ln(x, "ln_f") @ w["head"].T


def _stack(seeds: list[int], sites: list[tuple[str, ...]], **kw: int) -> tuple[T.StackedGPT, list]:
    inits = [T.init_weights(n_layer=2, d_model=16, context=8, seed=s) for s in seeds]
    # Perturb biases and gains so the test does not only see the zero/one initialisation.
    gen = torch.Generator().manual_seed(123)
    for w in inits:
        for name in w:
            if name.endswith((".b", ".g")):
                w[name] = w[name] + 0.1 * torch.randn(w[name].shape, generator=gen)
    init = {n: torch.stack([w[n] for w in inits]) for n in inits[0]}
    return T.StackedGPT(init, sites, n_head=kw.get("n_head", 2), p=0.3), inits


def test_stacked_model_matches_plain_reference_per_model() -> None:
    model, inits = _stack([0, 1, 2], [(), ("attn",), ("resid", "emb")])
    idx = torch.randint(0, T.VOCAB, (3, 4, 8), generator=torch.Generator().manual_seed(0))
    model.eval()
    out = model(idx)
    assert out.shape == (3, 4, 8, T.VOCAB)
    for k in range(3):
        ref = reference_forward(inits[k], idx[k], n_head=2)
        torch.testing.assert_close(out[k].double(), ref, atol=2e-5, rtol=1e-4)


def test_training_mode_drops_only_in_models_with_sites() -> None:
    sites = [()] + [(s,) for s in T.SITES]
    model, _ = _stack([0] * len(sites), sites)
    idx = torch.randint(0, T.VOCAB, (len(sites), 4, 8), generator=torch.Generator().manual_seed(1))
    model.eval()
    clean = model(idx)
    model.train()
    torch.manual_seed(0)
    noisy = model(idx)
    assert torch.equal(noisy[0], clean[0])  # the model without dropout is untouched
    for k, site in enumerate(T.SITES, start=1):
        assert not torch.allclose(noisy[k], clean[k]), site


def test_dropout_rows_statistics() -> None:
    torch.manual_seed(0)
    x = torch.ones(4, 200, 100)
    out = T._dropout(x, torch.tensor([1, 3]), 0.25)
    assert torch.equal(out[[0, 2]], x[[0, 2]])
    dropped = out[[1, 3]]
    zero_frac = (dropped == 0).double().mean().item()
    # 40,000 Bernoulli(0.25) draws: se = sqrt(.25*.75/4e4) ~ 0.0022; allow 5 se.
    assert abs(zero_frac - 0.25) < 0.011
    torch.testing.assert_close(dropped[dropped != 0], torch.full_like(dropped[dropped != 0],
                                                                     1 / 0.75))
    assert T._dropout(x, None, 0.5) is x


def test_models_in_a_stack_do_not_interact() -> None:
    corpus_stream = torch.randint(0, 50, (4000,), generator=torch.Generator().manual_seed(0))
    train_w = T.windows(corpus_stream[:3000], 8)
    val_w = T.windows(corpus_stream[3000:], 8)
    pc = replace(T.SETTINGS.quick(), context=8, d_model=16, n_head=2, steps=15, batch_size=4,
                 evals=1)
    alone = T.train_stack(train_w, val_w, ["none"], [3], pc, single_pass=False)
    stacked = T.train_stack(train_w, val_w, ["attn", "none", "recommended+resid"], [3], pc,
                            single_pass=False)
    # "none" has no randomness besides the seed's init and batches: the same model either way.
    assert stacked["val"][0][1] == pytest.approx(alone["val"][0][0], abs=1e-5)
    assert stacked["val"][0][0] != pytest.approx(alone["val"][0][0], abs=1e-5)


def test_per_model_gradient_clipping_matches_separate_clipping() -> None:
    model, _ = _stack([0, 1], [(), ()])
    for i, p in enumerate(model.params.values()):
        p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(i)) * (
            torch.tensor([10.0, 1e-3]).view(-1, *[1] * (p.dim() - 1)))
    expected = []
    for k in range(2):
        grads = [p.grad[k].clone().requires_grad_(False) for p in model.params.values()]
        holders = [torch.zeros_like(g, requires_grad=True) for g in grads]
        for h, g in zip(holders, grads, strict=True):
            h.grad = g
        torch.nn.utils.clip_grad_norm_(holders, 1.0)
        expected.append([h.grad for h in holders])
    model.clip_grad_norm_(1.0)
    for j, p in enumerate(model.params.values()):
        for k in range(2):
            torch.testing.assert_close(p.grad[k], expected[k][j], rtol=1e-5, atol=1e-7)


def test_bad_sites_and_rate_are_rejected() -> None:
    init = {n: w.unsqueeze(0) for n, w in
            T.init_weights(n_layer=1, d_model=8, context=4, seed=0).items()}
    with pytest.raises(DropkitValueError, match="Expected argument `sites`.*layernorm"):
        T.StackedGPT(init, [("layernorm",)], n_head=2, p=0.1)
    with pytest.raises(DropkitValueError, match="`p`"):
        T.StackedGPT(init, [("attn",)], n_head=2, p=1.0)


def test_corpus_split_windows_and_subset(tmp_path) -> None:
    (tmp_path / "a.py").write_bytes(b"abcdefghij" * 10)  # 100 bytes
    (tmp_path / "b.py").write_bytes("é".encode() * 50)  # 100 non-ASCII bytes
    c = T.load_corpus(["a.py", "missing.py", "b.py"], root=tmp_path, val_fraction=0.1)
    assert c.files == ("a.py", "b.py")
    assert len(c.train) == 180 and len(c.val) == 20
    assert bytes(c.train[:90].tolist()) == (b"abcdefghij" * 10)[:90]
    assert int(c.train[90:].max()) == T.VOCAB - 1  # non-ASCII bytes share the last id
    w = T.windows(c.train, 8)
    assert w.shape == ((180 - 1) // 8, 9)
    assert torch.equal(w[1, :-1], c.train[8:16]) and torch.equal(w[1, -1], c.train[16])
    sub = T.spread_subset(torch.arange(1000), 200, 100)
    assert torch.equal(sub[:100], torch.arange(100)) and torch.equal(sub[100:], torch.arange(900,
                                                                                              1000))
    with pytest.raises(FileNotFoundError, match="none of the standard-library files"):
        T.load_corpus(["missing.py"], root=tmp_path)


def test_stdlib_corpus_is_there_and_large_enough() -> None:
    c = T.load_corpus()
    pc = T.SETTINGS
    assert len(c.files) >= 10
    assert len(T.windows(c.train, pc.context)) >= pc.steps * pc.batch_size  # single pass fits
    assert len(c.val) >= pc.val_chars


@pytest.fixture(scope="module")
def quick_result():
    return T.run(LabConfig(quick=True, seeds=(0, 1), progress=False))


def test_quick_run_result_is_consistent(quick_result) -> None:
    r = quick_result
    assert r.id == "transformer-placement" and r.verdict in VERDICTS
    assert r.seeds == [0, 1] and r.figures and r.figures[0].png.startswith(b"\x89PNG")
    json.dumps(r.numbers, allow_nan=False)
    small = r.numbers["regimes"]["small-data"]
    vals = {c: s["val_loss"] for c, s in small["configs"].items()}
    # Effects recomputed by hand from the per-seed validation losses.
    resid = [a - b for a, b in zip(vals["recommended+resid"], vals["recommended"], strict=True)]
    assert small["effects"]["residual_mask_hurts"]["effects"] == pytest.approx(resid)
    helps = [a - b for a, b in zip(vals["none"], vals["recommended"], strict=True)]
    assert small["effects"]["recommended_helps"]["effects"] == pytest.approx(helps)
    subs = {k: judge(e["effects"], min_effect=T.SETTINGS.quick().min_effect, what="").verdict
            for k, e in small["effects"].items()}
    assert r.numbers["sub_verdicts"] == subs
    check_statements(r, ["tf.sites", "tf.residual", "tf.layernorm", "tf.embeddings"])
    by_effect = {key: sid for sid, key, _ in T.STATEMENTS}
    for key, verdict in subs.items():
        s = next(s for s in r.statements if s.id == by_effect[key])
        assert s.verdict == verdict
        assert s.numbers["per_seed"] == pytest.approx(small["effects"][key]["effects"])
    for regime in T.REGIMES:
        for stats in r.numbers["regimes"][regime]["configs"].values():
            assert all(math.isfinite(v) and 0 < v < math.log(T.VOCAB) + 1 for v in
                       stats["val_loss"])


def test_quick_run_is_reproducible_and_restores_threads(quick_result) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        again = T.run(LabConfig(quick=True, seeds=(0, 1), threads=2, progress=False))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert again.numbers["regimes"] == quick_result.numbers["regimes"]


def _verdict_by_hand(effects: list[float], min_effect: float) -> str:
    m = statistics.fmean(effects)
    se = statistics.stdev(effects) / math.sqrt(len(effects))
    if m - 2 * se > min_effect:
        return "supported"
    return "partly supported" if m > 0 and m + 2 * se > min_effect else "not supported"


def test_judge_on_made_up_losses() -> None:
    ps = T.SETTINGS.quick()  # configs: none, recommended, +emb, +resid, +ln
    base = {"none": 3.00, "recommended": 2.95, "recommended+emb": 2.97,
            "recommended+resid": 3.10, "recommended+ln": 2.90}
    jitter = [0.0, 0.002, -0.003]  # per seed, the same for every configuration but "none"
    val = [[base[c] + (0.0 if c == "none" else d) for c in ps.configs] for d in jitter]
    raw = {"train_bytes": 1_000, "val": val, "best_val": val, "train": val,
           "curve": [(ps.steps, val)]}
    shared = {"seeds": [0, 1, 2], "files": ["a.py"],
              "regimes": {r: raw for r in T.REGIMES}}
    j = T.judge(ps, [{"seed": s} for s in (0, 1, 2)], shared)
    by_id = {s.id: s for s in j.statements}
    helps = [0.05 - d for d in jitter]  # none - recommended, per seed
    assert by_id["tf.sites"].numbers["per_seed"] == pytest.approx(helps)
    expect = {"tf.sites": _verdict_by_hand(helps, ps.min_effect),  # mean 0.0503: supported
              "tf.residual": "supported",  # +0.15 exactly on every seed (se 0)
              "tf.embeddings": "supported",  # +0.02 > 0.01
              "tf.layernorm": "not supported"}  # -0.05
    assert expect["tf.sites"] == "supported"
    assert {k: s.verdict for k, s in by_id.items()} == expect
    assert group_verdict(j.statements) == "partly supported"
    assert j.key_number.startswith("small data: none 3.000 vs recommended 2.950 nats/byte; "
                                   "+resid +0.150, +emb +0.020; best: recommended+ln.")
    small = j.numbers["regimes"]["small-data"]
    assert small["description"] == f"1,000 training bytes, {30 * 8 * 16 / 1000:.0f} epochs"
    assert small["configs"]["none"]["val_loss_mean"] == pytest.approx(3.0)
    assert small["configs"]["recommended"]["val_loss_se"] == pytest.approx(
        statistics.stdev(jitter) / math.sqrt(3))
    assert j.numbers["sub_verdicts"]["layernorm_dropout_hurts"] == "not supported"


def test_shared_is_pure_and_uses_the_first_seeds() -> None:
    ps = replace(T.SETTINGS.quick(), steps=6, evals=1, val_chars=512)
    a = T.shared(ps, (0, 1))
    torch.manual_seed(99)
    torch.rand(1000)  # the global stream moved: nothing may depend on it
    b = T.shared(ps, (0, 1, 2, 3))  # quick keeps the first two seeds
    assert a == b and a["seeds"] == [0, 1]
    c = T.shared(ps, (1, 0))  # other seeds, other stack: other masks and numbers
    assert c["seeds"] == [1, 0] and c["regimes"] != a["regimes"]
    assert T.measure(ps, 3) == {"seed": 3}
