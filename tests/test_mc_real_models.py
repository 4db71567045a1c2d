"""MC dropout on real model families built from configs (random weights, no download).

Each test checks what issue 10 found broken: attention dropout that transformers 5.x passes as
a rate to a free attention function is switched and fires (eager and SDPA), the report shows
the unused ``nn.Dropout`` child as silent, stochastic depth is reported and switched only on
request, keyword inputs and ``ModelOutput`` work, and the model is bitwise unchanged.
"""

from __future__ import annotations

import pytest
import torch

import dropkit
from dropkit.mc.plan import plans
from tests.zoo.small import assert_same_state, snapshot

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")

torch.set_num_threads(1)


def _bert(attn_impl: str, attn_p: float = 0.3, hidden_p: float = 0.0):
    cfg = transformers.BertConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=48, max_position_embeddings=16, num_labels=3,
        attention_probs_dropout_prob=attn_p, hidden_dropout_prob=hidden_p,
        initializer_range=0.5)  # large weights: attention dropout visibly moves the logits
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification._from_config(
        cfg, attn_implementation=attn_impl).eval()
    ids = torch.randint(0, 64, (3, 10))
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[1, 6:] = 0
    return model, {"input_ids": ids, "attention_mask": mask}


def _train_mode_mean(model, enc, s: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: the model in train mode (no BatchNorm here), S passes; mean and SE."""
    flags = [(m, m.training) for m in model.modules()]
    torch.manual_seed(seed)
    model.train()
    try:
        with torch.no_grad():
            outs = torch.stack([torch.softmax(model(**enc).logits, -1) for _ in range(s)])
    finally:
        for m, f in flags:
            m.training = f
    return outs.mean(0), outs.std(0) / s ** 0.5


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_bert_attention_dropout_only_is_switched_and_fires(impl: str) -> None:
    model, enc = _bert(impl)
    snap = snapshot(model)
    mc = dropkit.MCDropout(model, samples=200, seed=0, progress=False)
    pred = mc.predict(enc)
    assert_same_state(model, snap)
    plan = mc.plan
    attn = {f"bert.encoder.layer.{i}.attention.self" for i in range(2)}
    assert attn <= set(plan.switch_on)
    assert {p for p, (kind, _) in plan.firing.fired.items() if kind == "attention"} == attn
    assert all(rate == pytest.approx(0.3) for _, rate in plan.firing.fired.values())
    # the nn.Dropout child kept only for its rate never runs: reported as silent, not as on
    assert set(plan.firing.silent) == {f"{p}.dropout" for p in attn}
    assert float(pred.samples.var(0).max()) > 1e-6  # the samples vary
    ref, se = _train_mode_mean(model, enc, 200, seed=1)
    mean_se = (pred.class_std / 200 ** 0.5)
    assert bool(((pred.mean - ref).abs() <= 5 * (se ** 2 + mean_se ** 2).sqrt() + 1e-4).all())


def test_keyword_inputs_mapping_and_batch_encoding_agree() -> None:
    model, enc = _bert("eager", attn_p=0.1, hidden_p=0.1)
    a = dropkit.MCDropout(model, samples=5, seed=3, keep_samples=True).predict(enc)
    b = dropkit.MCDropout(model, samples=5, seed=3).predict(**enc)
    c = dropkit.MCDropout(model, samples=5, seed=3).predict(transformers.BatchEncoding(enc))
    assert torch.equal(a.samples, b.samples) and torch.equal(a.samples, c.samples)
    s = dropkit.sample(model, enc, 5, seed=3)
    assert torch.equal(s, a.samples)  # ModelOutput -> .logits by default
    loader = [enc, {k: v[:2] for k, v in enc.items()}]
    joined = dropkit.MCDropout(model, samples=5, seed=3, progress=False).predict_loader(loader)
    assert joined.mean.shape == (5, 3)


def test_t5_decoder_inputs_as_keywords() -> None:
    cfg = transformers.T5Config(vocab_size=40, d_model=32, d_kv=8, d_ff=48, num_layers=2,
                                num_heads=2, dropout_rate=0.2, decoder_start_token_id=0)
    torch.manual_seed(0)
    model = transformers.T5ForConditionalGeneration._from_config(cfg).eval()
    enc = {"input_ids": torch.randint(0, 40, (2, 6)),
           "decoder_input_ids": torch.randint(0, 40, (2, 4))}
    snap = snapshot(model)
    out = dropkit.sample(model, enc, 4, seed=0)
    assert out.shape == (4, 2, 4, 40) and float(out.var(0).max()) > 0
    assert_same_state(model, snap)


def test_llama_attention_dropout_is_found() -> None:
    cfg = transformers.LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=48,
                                   num_hidden_layers=2, num_attention_heads=2,
                                   num_key_value_heads=2, attention_dropout=0.1)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM._from_config(cfg, attn_implementation="eager").eval()
    ids = torch.randint(0, 50, (2, 7))
    out = dropkit.sample(model, {"input_ids": ids}, 4, seed=0)
    assert out.shape == (4, 2, 7, 50) and float(out.var(0).max()) > 0
    plan = plans(model)[0]
    assert set(plan.firing.fired) == {"model.layers.0.self_attn", "model.layers.1.self_attn"}
    default = transformers.LlamaForCausalLM._from_config(
        transformers.LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=48,
                                 num_hidden_layers=1, num_attention_heads=2,
                                 num_key_value_heads=2)).eval()
    with pytest.raises(dropkit.NoDropoutError, match="only dropout with p=0|never drops"):
        dropkit.sample(default, {"input_ids": ids}, 2)


def test_timm_classifier_dropout_and_stochastic_depth() -> None:
    torch.manual_seed(0)
    resnet = timm.create_model("resnet10t", pretrained=False, num_classes=4,
                               drop_rate=0.3).eval()
    x = torch.randn(2, 3, 32, 32)
    out = dropkit.sample(resnet, x, 6, seed=0)
    assert float(out.var(0).max()) > 0
    assert plans(resnet)[0].firing.fired == {"": ("functional", 0.3)}
    convnext = timm.create_model("convnext_atto", pretrained=False, num_classes=4,
                                 drop_path_rate=0.2).eval()
    with pytest.raises(dropkit.NoDropoutError, match="stochastic_depth=True"):
        dropkit.sample(convnext, x, 2)
    snap = snapshot(convnext)
    deep = dropkit.sample(convnext, x, 6, seed=0, stochastic_depth=True)
    assert float(deep.var(0).max()) > 0
    fired = plans(convnext)[0].firing.fired
    assert fired and {k for k, _ in fired.values()} == {"stochastic_depth"}
    assert_same_state(convnext, snap)


def test_token_level_uncertainty_of_a_causal_lm_leaves_padding_out() -> None:
    cfg = transformers.GPT2Config(vocab_size=60, n_embd=32, n_layer=2, n_head=2, n_positions=16,
                                  resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1,
                                  initializer_range=0.3)
    torch.manual_seed(0)
    lm = transformers.GPT2LMHeadModel._from_config(cfg, attn_implementation="eager").eval()
    ids = torch.randint(0, 60, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0  # right padding
    kept = dropkit.MCDropout(lm, samples=12, seed=0).predict(input_ids=ids, attention_mask=mask)
    streamed = dropkit.MCDropout(lm, samples=12, seed=0, keep_samples=False, chunk=12).predict(
        input_ids=ids, attention_mask=mask)
    assert kept.mutual_information.shape == (2, 8)
    # hand computation from the kept samples, float64: mean MI over the real tokens (the
    # streamed run draws the same 12 samples in one chunk)
    p = torch.softmax(kept.samples.double(), -1)  # (S, B, T, V)
    pbar = p.mean(0)
    mi = -(pbar * pbar.log()).sum(-1) + (p * p.log()).sum(-1).mean(0)  # (B, T)
    m = mask.double()
    ref = (mi * m).sum(1) / m.sum(1)
    torch.testing.assert_close(kept.sequence().double(), ref, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(streamed.sequence(), kept.sequence(), rtol=1e-4, atol=1e-6)
    # what stands at padded positions never changes a sequence's value
    other = ids.clone()
    other[1, 5:] = (other[1, 5:] + 7) % 60
    moved = dropkit.MCDropout(lm, samples=12, seed=0).predict(input_ids=other,
                                                              attention_mask=mask)
    assert not torch.allclose(moved.mutual_information[1, 5:], kept.mutual_information[1, 5:])
    torch.testing.assert_close(moved.sequence("predictive_entropy", "max"),
                               kept.sequence("predictive_entropy", "max"))
