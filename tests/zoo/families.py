"""A zoo of small real models (transformers 5.24, timm 1.0.31, torchvision 0.28) for MC tests.

Every builder returns ``(model.eval(), inputs)``: random weights from a fixed seed (torch's
global RNG is left as it was), no download, hidden size 64 or smaller, 2 layers where the
family allows, batch 2; ``inputs`` is a tensor or a dict of keyword inputs (call the model with
`tests.firing.call`). A forward pass takes well under 0.2 s on one CPU core.

Token inputs are ``{"input_ids", "attention_mask"}`` of shape (2, 8), the second sequence
ending in two padding positions (mask 0); T5 adds ``decoder_input_ids`` (2, 4); images are
(2, 3, 32, 32).

`FAMILIES` maps an id to an `Entry`, whose ``rates`` lists, one per site, the drop rate of every
dropout-like op that fires in one training-mode forward, counted by hand from the config and the
library's source (the comment at each builder says how); `tests/test_zoo.py` checks the
independent firing trace of `tests/firing.py` against these counts.

Dropout options of the transformers builders:
  ``"default"``    the config's defaults (0.1 almost everywhere; Llama: attention_dropout=0).
  ``"attention"``  attention-probability dropout p=0.3, every other dropout 0. T5 has one
                   ``dropout_rate`` for everything, so its ``nn.Dropout`` modules are set to p=0
                   after construction and only the attention's float ``dropout`` keeps 0.3.
None of the seven transformers families here has stochastic depth (``drop_path``) in its config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tests._torchvision import allow_import

allow_import()  # transformers and timm import torchvision, whose C ops need the CUDA torch

Inputs = torch.Tensor | dict[str, torch.Tensor]
Built = tuple[nn.Module, Inputs]

P_ATTN = 0.3  # the attention-only configurations
B, T, VOCAB, IMG = 2, 8, 100, 32  # batch, tokens, vocabulary, image side
ATTN_IMPLS = ("eager", "sdpa")
HF_DROPOUTS = ("default", "attention")


def _seeded(build: Callable[[], Built]) -> Built:
    """Build under seed 0 without touching the caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, inputs = build()
    return model.eval(), inputs


def _tokens() -> dict[str, torch.Tensor]:
    ids = torch.randint(3, VOCAB, (B, T))
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, -2:] = 0  # the second sequence ends in two padding tokens
    return {"input_ids": ids, "attention_mask": mask}


def _check(dropout: str, attn: str) -> None:
    if dropout not in HF_DROPOUTS or attn not in ATTN_IMPLS:
        raise ValueError(f"dropout in {HF_DROPOUTS}, attn in {ATTN_IMPLS}; got {dropout}, {attn}")


# ------------------------------------------------------------------------------------------
# transformers: attention dropout is a float passed to a free attention function (eager:
# F.dropout inside it, SDPA: dropout_p), gated by the attention module's own `training` flag.
# ------------------------------------------------------------------------------------------


def bert(attn: str = "eager", dropout: str = "default") -> Built:
    """BertForSequenceClassification. Default sites (all 0.1): embeddings.dropout; per layer
    the attention probabilities, attention.output.dropout, output.dropout; the classifier
    dropout: 1 + 2 x 3 + 1 = 8. Attention only: 2 (one per layer)."""
    from transformers import BertConfig, BertForSequenceClassification

    _check(dropout, attn)
    extra = {} if dropout == "default" else dict(hidden_dropout_prob=0.0,
                                                 attention_probs_dropout_prob=P_ATTN)
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128, max_position_embeddings=32, num_labels=3,
                     attn_implementation=attn, **extra)
    return _seeded(lambda: (BertForSequenceClassification(cfg), _tokens()))


def roberta(attn: str = "eager", dropout: str = "default") -> Built:
    """RobertaForSequenceClassification. As BERT, but the classification head calls its one
    dropout module twice (before and after its dense layer): 1 + 6 + 2 = 9 at 0.1."""
    from transformers import RobertaConfig, RobertaForSequenceClassification

    _check(dropout, attn)
    extra = {} if dropout == "default" else dict(hidden_dropout_prob=0.0,
                                                 attention_probs_dropout_prob=P_ATTN)
    cfg = RobertaConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=128,
                        max_position_embeddings=T + 4, num_labels=3,
                        attn_implementation=attn, **extra)
    return _seeded(lambda: (RobertaForSequenceClassification(cfg), _tokens()))


def distilbert(attn: str = "eager", dropout: str = "default") -> Built:
    """DistilBertForSequenceClassification. embeddings.dropout (0.1); per layer the attention
    probabilities (attention_dropout 0.1) and ffn.dropout (0.1); the classifier dropout
    (seq_classif_dropout 0.2): 5 x 0.1 + 1 x 0.2. Attention only: 2."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    _check(dropout, attn)
    extra = {} if dropout == "default" else dict(dropout=0.0, attention_dropout=P_ATTN,
                                                 seq_classif_dropout=0.0)
    cfg = DistilBertConfig(vocab_size=VOCAB, dim=64, n_layers=2, n_heads=2, hidden_dim=128,
                           max_position_embeddings=32, num_labels=3, attn_implementation=attn,
                           **extra)
    return _seeded(lambda: (DistilBertForSequenceClassification(cfg), _tokens()))


def gpt2(attn: str = "eager", dropout: str = "default") -> Built:
    """GPT2LMHeadModel (logits (B, T, V)). transformer.drop (embd_pdrop); per layer the attention
    probabilities (attn_pdrop), attn.resid_dropout and mlp.dropout (resid_pdrop): 7 at 0.1.
    Attention only: 2."""
    from transformers import GPT2Config, GPT2LMHeadModel

    _check(dropout, attn)
    extra = {} if dropout == "default" else dict(embd_pdrop=0.0, resid_pdrop=0.0,
                                                 attn_pdrop=P_ATTN)
    cfg = GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=2, n_head=2, n_positions=32,
                     bos_token_id=1, eos_token_id=2,
                     attn_implementation=attn, **extra)
    return _seeded(lambda: (GPT2LMHeadModel(cfg), _tokens()))


def t5(attn: str = "eager", dropout: str = "default") -> Built:
    """T5ForConditionalGeneration with ``decoder_input_ids``. Encoder: encoder.dropout after the
    embedding, per block the attention probabilities, layer.0.dropout, DenseReluDense.dropout,
    layer.1.dropout, and encoder.dropout again at the end: 1 + 2 x 4 + 1 = 10. Decoder: the same
    plus cross-attention probabilities and layer.1.dropout per block: 1 + 2 x 6 + 1 = 14. Total
    24 at 0.1. Attention only: 2 encoder self + 2 decoder self + 2 cross = 6."""
    from transformers import T5Config, T5ForConditionalGeneration

    _check(dropout, attn)
    rate = 0.1 if dropout == "default" else P_ATTN
    cfg = T5Config(vocab_size=VOCAB, d_model=64, d_kv=32, d_ff=128, num_layers=2,
                   num_decoder_layers=2, num_heads=2, dropout_rate=rate, decoder_start_token_id=0,
                   attn_implementation=attn)

    def build() -> Built:
        model = T5ForConditionalGeneration(cfg)
        if dropout == "attention":
            for m in model.modules():
                if isinstance(m, nn.Dropout):
                    m.p = 0.0  # T5Attention keeps its own float `dropout` (0.3)
        inputs = _tokens()
        inputs["decoder_input_ids"] = torch.randint(3, VOCAB, (B, T // 2))
        return model, inputs

    return _seeded(build)


def vit(attn: str = "eager", dropout: str = "default") -> Built:
    """ViTForImageClassification, 32x32 images, 8x8 patches. embeddings.dropout; per layer the
    attention probabilities, attention.output.dropout, output.dropout: 1 + 2 x 3 = 7 at 0.0 by
    default (ViTConfig's defaults are 0), so "default" here sets hidden and attention dropout
    to 0.1 as BERT's do. Attention only: 2."""
    from transformers import ViTConfig, ViTForImageClassification

    _check(dropout, attn)
    hidden, att = (0.1, 0.1) if dropout == "default" else (0.0, P_ATTN)
    cfg = ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=128, image_size=IMG, patch_size=8, num_labels=3,
                    hidden_dropout_prob=hidden, attention_probs_dropout_prob=att,
                    attn_implementation=attn)
    return _seeded(lambda: (ViTForImageClassification(cfg),
                            {"pixel_values": torch.randn(B, 3, IMG, IMG)}))


def llama(attn: str = "eager", dropout: str = "default") -> Built:
    """LlamaForCausalLM (logits (B, T, V)). Its only dropout is attention_dropout, 0 by default:
    no site fires. Attention only: 2 (one per layer) at 0.3."""
    from transformers import LlamaConfig, LlamaForCausalLM

    _check(dropout, attn)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=32, attention_dropout=0.0 if dropout == "default"
                      else P_ATTN, attn_implementation=attn)
    return _seeded(lambda: (LlamaForCausalLM(cfg), _tokens()))


# ------------------------------------------------------------------------------------------
# timm: head dropout is F.dropout in forward_head (called from the root module); DropPath
# draws a per-sample mask with bernoulli_(1 - p); fused attention passes dropout_p to SDPA.
# ------------------------------------------------------------------------------------------


def _timm(name: str, **kwargs: Any) -> Callable[[], Built]:
    def build() -> Built:
        import timm

        return (timm.create_model(name, pretrained=False, num_classes=5, **kwargs),
                torch.randn(B, 3, IMG, IMG))

    return build


def timm_resnet(drop_rate: float = 0.3) -> Built:
    """resnet10t: F.dropout(drop_rate) before the classifier, 1 site."""
    return _seeded(_timm("resnet10t", drop_rate=drop_rate))


def timm_efficientnet(drop_rate: float = 0.3, drop_path_rate: float = 0.2) -> Built:
    """efficientnet_b0 (stage repeats 1,2,2,3,3,4,1: 16 blocks, block i has drop path rate
    ``drop_path_rate * i / 16`` but applies it only with a residual skip: blocks 2, 4, 6, 7, 9,
    10, 12, 13, 14) + the head's F.dropout: 9 + 1 sites."""
    return _seeded(_timm("efficientnet_b0", drop_rate=drop_rate, drop_path_rate=drop_path_rate))


def timm_convnext(drop_path_rate: float = 0.0) -> Built:
    """convnext_atto with depths (1, 1, 2, 1), dims (16, 32, 64, 128): block rates
    linspace(0, drop_path_rate, 5); the first is 0 (an Identity): 4 sites. The default keeps
    the head's nn.Dropout(p=0) placeholder: nothing fires."""
    return _seeded(_timm("convnext_atto", depths=(1, 1, 2, 1), dims=(16, 32, 64, 128),
                         drop_path_rate=drop_path_rate))


def timm_vit(drop_path_rate: float = 0.2, attn_drop_rate: float = 0.0) -> Built:
    """vit_tiny_patch16_224 at depth 2, width 64, 32x32 images, 8x8 patches. Block rates
    linspace(0, drop_path_rate, 2): block 1's drop_path1 and drop_path2 fire (2 sites);
    attn_drop_rate > 0 adds SDPA's dropout_p in each block (2 sites)."""
    return _seeded(_timm("vit_tiny_patch16_224", img_size=IMG, patch_size=8, depth=2,
                         embed_dim=64, num_heads=2, drop_path_rate=drop_path_rate,
                         attn_drop_rate=attn_drop_rate))


# ------------------------------------------------------------------------------------------
# torchvision (pure-Python models, importable beside the CPU torch via tests._torchvision):
# StochasticDepth draws bernoulli_(1 - p) per row; DenseNet calls F.dropout in each layer.
# ------------------------------------------------------------------------------------------


def tv_efficientnet_b0() -> Built:
    """efficientnet_b0 with its defaults: stochastic depth 0.2 * i / 16 in the 9 residual blocks
    (as timm's, above) and classifier Dropout(0.2): 10 sites."""
    from torchvision.models import efficientnet_b0

    return _seeded(lambda: (efficientnet_b0(num_classes=5), torch.randn(B, 3, IMG, IMG)))


def tv_convnext(stochastic_depth_prob: float = 0.3) -> Built:
    """ConvNeXt with two stages of 2 blocks (16 and 32 channels): block rates
    ``stochastic_depth_prob * i / 3`` for i = 0..3, the first 0: 3 sites."""
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    setting = [CNBlockConfig(16, 32, 2), CNBlockConfig(32, None, 2)]
    return _seeded(lambda: (ConvNeXt(setting, stochastic_depth_prob=stochastic_depth_prob,
                                     num_classes=5), torch.randn(B, 3, IMG, IMG)))


def tv_densenet(drop_rate: float = 0.2) -> Built:
    """DenseNet(growth 8, blocks (2, 2), 16 initial features): F.dropout in each of the 4 dense
    layers: 4 sites."""
    from torchvision.models import DenseNet

    return _seeded(lambda: (DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16,
                                     drop_rate=drop_rate, num_classes=5),
                            torch.randn(B, 3, IMG, IMG)))


# ------------------------------------------------------------------------------------------
# the registry
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One zoo model: ``build()`` gives ``(model.eval(), inputs)``; ``rates`` holds the drop
    rate of each site that fires in one training-mode forward (hand-counted, sorted)."""

    id: str
    library: str  # "transformers", "timm" or "torchvision"
    build: Callable[[], Built]
    rates: tuple[float, ...]
    has_batchnorm: bool = False
    per_token: bool = False  # logits (B, T, V) with an attention mask (GPT-2, T5, Llama)


def _effnet_path_rates() -> list[float]:
    return [0.2 * i / 16 for i in (2, 4, 6, 7, 9, 10, 12, 13, 14)]


_HF_DEFAULT: dict[str, tuple[Callable[..., Built], list[float], int]] = {
    # family: (builder, default rates, attention-only site count)
    "bert": (bert, [0.1] * 8, 2),
    "roberta": (roberta, [0.1] * 9, 2),
    "distilbert": (distilbert, [0.1] * 5 + [0.2], 2),
    "gpt2": (gpt2, [0.1] * 7, 2),
    "t5": (t5, [0.1] * 24, 6),
    "vit": (vit, [0.1] * 7, 2),
    "llama": (llama, [], 2),
}


def _registry() -> dict[str, Entry]:
    out: dict[str, Entry] = {}
    for fam, (fn, default, n_attn) in _HF_DEFAULT.items():
        for attn in ATTN_IMPLS:
            for drop in HF_DROPOUTS:
                rates = default if drop == "default" else [P_ATTN] * n_attn
                out[f"hf-{fam}-{attn}-{drop}"] = Entry(
                    f"hf-{fam}-{attn}-{drop}", "transformers",
                    lambda fn=fn, attn=attn, drop=drop: fn(attn, drop), tuple(sorted(rates)),
                    per_token=fam in ("gpt2", "t5", "llama"))
    timm_entries = [
        ("timm-resnet-droprate", timm_resnet, [0.3], True),
        ("timm-efficientnet-both", timm_efficientnet, [0.3, *_effnet_path_rates()], True),
        ("timm-convnext-default", timm_convnext, [], False),
        ("timm-convnext-droppath", lambda: timm_convnext(0.2), [0.05, 0.1, 0.15, 0.2], False),
        ("timm-vit-droppath", timm_vit, [0.2, 0.2], False),
        ("timm-vit-attn", lambda: timm_vit(0.0, P_ATTN), [P_ATTN, P_ATTN], False),
    ]
    tv_entries = [
        ("tv-efficientnet_b0", tv_efficientnet_b0, [0.2, *_effnet_path_rates()], True),
        ("tv-convnext", tv_convnext, [0.1, 0.2, 0.3], False),
        ("tv-densenet", tv_densenet, [0.2] * 4, True),
    ]
    for lib, entries in (("timm", timm_entries), ("torchvision", tv_entries)):
        for eid, fn, rates, bn in entries:
            out[eid] = Entry(eid, lib, fn, tuple(sorted(rates)), bn)
    return out


FAMILIES: dict[str, Entry] = _registry()
