"""Lint on real models (transformers, timm, torchvision) built from configs with random weights,
no network: the false or useless findings a user got on them (issue 10, item 6), each case
checked as the exact findings (rule, path, severity) against what the architecture says."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dropkit.diagnose import lint
from dropkit.diagnose.rates import configured_rate
from dropkit.inspection.discover import find_dropout

IDS = torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(0))


def _triples(result) -> list[tuple[str, str, str]]:
    return [(f.rule, f.path, f.severity) for f in result]


def test_bert_attention_configured_01_is_not_p0():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, vocab_size=100,
                                     attn_implementation="eager")
    model = transformers.BertModel(config)
    result = lint(model, IDS)
    # Before: dead-dropout warnings (p=0) on both self-attention modules, exit 1.
    attn = [f"encoder.layer.{i}.attention.self" for i in range(2)]
    off = [p for p in attn if p not in find_dropout(model).switch_on]  # all, with today's mc_mode
    assert _triples(result) == [("dropout-after-layernorm", "embeddings.dropout", "info"),
                                ("dropout-on-embeddings", "embeddings.dropout", "info")] + [
        ("uncontrollable-dropout", p, "info") for p in off]
    assert result.exit_code == 0
    rates = {s.path: s.p for s in result.flows}
    assert [rates[p] for p in attn] == [config.attention_probs_dropout_prob] * 2  # 0.1, not 0


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_llama_zero_attention_dropout_is_said_once(impl):
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2,
                                      vocab_size=100, attn_implementation=impl)
    assert config.attention_dropout == 0.0  # Llama's default: its only dropout
    result = lint(transformers.LlamaModel(config), IDS)
    # Before: "no dropout at all" (warning) beside dead-dropout warnings on the same sites.
    assert _triples(result) == [("dead-dropout", "layers", "info")] and result.exit_code == 0
    assert result[0].related == ("layers.0.self_attn", "layers.1.self_attn")


def test_timm_convnext_placeholders_are_one_info_and_exit_0():
    timm = pytest.importorskip("timm")
    model = timm.create_model("convnext_atto", pretrained=False, num_classes=10)
    zero = sorted(p for p, m in model.named_modules() if isinstance(m, nn.Dropout) and m.p == 0)
    assert len(zero) == 25  # drop1/drop2 in 12 blocks' MLPs and the head's drop
    result = lint(model, torch.randn(2, 3, 32, 32))
    # Before: 25 dead-dropout warnings and no-dropout, exit 1.
    assert _triples(result) == [("dead-dropout", "", "info")] and result.exit_code == 0
    assert list(result[0].related) == zero


def test_torchvision_densenet_one_finding_per_dropout_site():
    pytest.importorskip("torchvision")
    from torchvision.models import DenseNet

    blocks = (3, 2)
    model = DenseNet(growth_rate=4, block_config=blocks, num_init_features=8, bn_size=2,
                     drop_rate=0.2, num_classes=10)
    result = lint(model, torch.randn(2, 3, 32, 32))
    # Each layer's output is concatenated into every later layer's input in its block (norm1)
    # and into the transition's BatchNorm (the last block's into norm5).
    expected = {}
    for b, n in enumerate(blocks, 1):
        block = f"features.denseblock{b}"
        after = f"features.transition{b}.norm" if b < len(blocks) else "features.norm5"
        for i in range(1, n + 1):
            expected[f"{block}.denselayer{i}"] = {
                *(f"{block}.denselayer{j}.norm1" for j in range(i + 1, n + 1)), after}
    # Before: one finding per (site, BatchNorm) pair.
    assert _triples(result) == [("dropout-before-batchnorm", p, "warning")
                                for p in sorted(expected)]
    assert {f.path: set(f.related) for f in result} == expected
    for f in result:
        assert all(bn in f.message for bn in f.related)


def test_stochastic_depth_rates_are_read():
    # the sites the inspection rewrite reports as "stochastic_depth": their rate, from the model
    timm = pytest.importorskip("timm")
    torchvision = pytest.importorskip("torchvision")
    assert configured_rate(timm.layers.DropPath(0.15)).p == 0.15
    assert configured_rate(torchvision.ops.StochasticDepth(0.2, "row")).p == 0.2
