"""Lint on the structures of real libraries, written small: Hugging Face attention whose rate
is 0 while its flag is off, p=0 placeholders, hand-written norms (T5, Llama) and their effect on
the residual-stream rule. Each case checks the exact findings (rule, path, severity)."""

from __future__ import annotations

import pytest
import torch
from lint_models import (
    NORMS,
    DenseBlock,
    HFAttention,
    HFEncoder,
    Rescale,
    SqueezeExcite,
    Standardize,
    T5Like,
)
from torch import nn

from dropkit.diagnose import build_dataflow, lint
from dropkit.diagnose.handnorm import mark_hand_norms
from dropkit.diagnose.rates import configured_rate
from dropkit.inspection.discover import find_dropout

IDS = torch.randint(0, 32, (2, 6), generator=torch.Generator().manual_seed(0))
PAIR = (IDS, IDS[:, :5])


def _triples(result) -> list[tuple[str, str, str]]:
    return [(f.rule, f.path, f.severity) for f in result]


def _off(model: HFEncoder) -> list[str]:
    """The attention modules whose flag mc_mode leaves off (all of them today)."""
    return [p for p in ("attn.0", "attn.1") if p not in find_dropout(model).switch_on]


def test_configured_rate_is_read_from_the_model():
    # the attribute the call reads, evaluated as under MC dropout (flag on), not the flag's value
    attn = HFAttention(16, 0.25).eval()
    assert configured_rate(attn).p == 0.25 == attn.attention_dropout
    assert configured_rate(attn).source == "self.attention_dropout"  # the gated value
    assert configured_rate(nn.Dropout(0.3)).p == 0.3
    assert configured_rate(nn.MultiheadAttention(8, 2, dropout=0.2)).p == 0.2
    assert configured_rate(nn.Linear(2, 2)) is None  # no rate anywhere: unknown, not 0
    # DenseNet's F.dropout(x, p=self.drop_rate, training=self.training)
    assert configured_rate(DenseBlock(drop_rate=0.15).layers[0]).p == 0.15


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("method", ["fx", "hooks"])
def test_attention_configured_above_zero_is_never_called_p0(impl, method):
    # Before: two dead-dropout warnings (p=0) on attention configured with 0.1 (the flag was off).
    # While mc_mode does not switch the attention's flag, the site is said to stay off (info).
    model = HFEncoder(0.1, 0.1, impl)
    result = lint(model, IDS, method=method)
    assert _triples(result) == [("uncontrollable-dropout", p, "info") for p in _off(model)] + [
        ("dropout-after-layernorm", "dropout", "info"),
        ("dropout-on-embeddings", "dropout", "info")] and result.exit_code == 0
    assert all(s.p == 0.1 for s in result.flows)  # eager: the attention sites show their rate


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_zero_attention_is_said_once(impl):
    # Llama: attention_dropout 0.0 is the only dropout. Before: "no dropout at all" (warning)
    # next to dead-dropout warnings on the same sites.
    result = lint(HFEncoder(0.0, None, impl), IDS)
    assert _triples(result) == [("dead-dropout", "attn", "info")] and result.exit_code == 0
    assert result[0].related == ("attn.0", "attn.1")
    [alone] = lint(HFEncoder(0.0, None, impl), IDS, select=["no-dropout"])
    assert (alone.rule, alone.severity, alone.related) == ("no-dropout", "info", ("attn.0",
                                                                                 "attn.1"))


def test_placeholders_are_one_info_finding():
    model = HFEncoder(0.0, 0.0)
    zero = {p for p, m in model.named_modules() if isinstance(m, nn.Dropout) and m.p == 0}
    result = lint(model, IDS)
    assert _triples(result) == [("dead-dropout", "", "info")] and result.exit_code == 0
    assert set(result[0].related) == zero | {"attn.0", "attn.1"}
    # beside live dropout: still one info, about the placeholders only
    result = lint(HFEncoder(0.0, 0.1), IDS)
    assert ("dead-dropout", "attn", "info") in _triples(result) and result.exit_code == 0


def test_only_off_attention_is_no_dropout_for_mc():
    model = HFEncoder(0.1, None)
    result = lint(model, IDS)
    off = _off(model)
    assert _triples(result) == ([("no-dropout", "", "warning")] if off else []) + [
        ("uncontrollable-dropout", p, "info") for p in off]
    if off:
        assert result[0].related == tuple(off) and "p=0" not in result[0].message


def _marked(module: nn.Module, x: torch.Tensor) -> list[str]:
    flow = mark_hand_norms(build_dataflow(module, x, method="hooks"))
    return [n.op for n in flow.nodes]


def test_hand_norms_are_recognised_by_what_they_compute():
    x = torch.randn(2, 5, 16)
    # Rescale: to, pow, mean, add eps, rsqrt, mul -> norm from pow on; the weight product after
    ops = _marked(Rescale(16), x)
    assert ops == ["input", "reshape", "norm", "norm", "norm", "norm", "norm", "elementwise",
                   "output"]
    # Standardize: mean, var, sub, add eps, sqrt, div -> norm; the affine after it is not
    ops = _marked(Standardize(16), x)
    assert ops[1:7] == ["norm"] * 6 and ops[7:] == ["elementwise", "add", "output"]
    # a squeeze-and-excitation gate scales x by layers of its mean: no norm
    assert "norm" not in _marked(SqueezeExcite(4), torch.randn(2, 4, 3, 3))


@pytest.mark.parametrize("stream, method", [(False, "fx"), (True, "hooks")])
def test_hand_written_norms_lint_like_torch_rmsnorm(stream, method):
    # Before: T5's final_layer_norm -> dropout (hand RMSNorm) was "dropout-on-residual-stream",
    # and with stream dropout the last block's one too (its sum only reaches the final norm).
    expected = [("dropout-on-residual-stream", f"{s}.block.0.stream", "warning")
                for s in ("decoder", "encoder") if stream]
    expected += [("dropout-on-embeddings", "decoder.dropout", "info"),
                 ("dropout-on-embeddings", "encoder.dropout", "info")]
    for norm in NORMS:
        torch.manual_seed(0)
        assert _triples(lint(T5Like(norm, stream=stream), PAIR, method=method)) == expected, norm


def test_squeeze_excite_does_not_hide_a_batchnorm():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Dropout(0.2), SqueezeExcite(4),
                          nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))
    [f] = lint(model, torch.randn(2, 3, 8, 8))
    assert (f.rule, f.path, f.severity, f.related) == ("dropout-before-batchnorm", "2",
                                                       "warning", ("5",))
