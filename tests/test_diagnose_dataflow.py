"""The dataflow graph: fx and hooks agree, untraceable models fall back, the model is borrowed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from lint_models import (
    GPT,
    DenseBlock,
    FunctionalDropout,
    ResNet,
    Untraceable,
    transformer_encoder,
    vgg_like,
)
from torch import nn

from dropkit.diagnose import build_dataflow, lint
from dropkit.errors import DropkitTypeError, DropkitValueError

IMG = torch.randn(2, 3, 8, 8)
VEC = torch.randn(2, 8)


def _snapshot(model: nn.Module) -> tuple[dict[str, torch.Tensor], list[bool]]:
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [m.training for m in model.modules()])


def _same(model: nn.Module, snap: tuple[dict[str, torch.Tensor], list[bool]]) -> bool:
    state, flags = snap
    now = model.state_dict()
    return (now.keys() == state.keys()
            and all(torch.equal(now[k], v) for k, v in state.items())
            and [m.training for m in model.modules()] == flags)


@pytest.mark.parametrize("make, x", [
    (vgg_like, IMG), (DenseBlock, IMG), (lambda: ResNet("wide"), IMG),
    (FunctionalDropout, VEC),
])
def test_fx_and_hooks_agree_on_traceable_models(make, x):
    torch.manual_seed(0)
    model = make()
    fx, hooks = (build_dataflow(model, x, method=m) for m in ("fx", "hooks"))
    assert fx.method == "fx" and hooks.method == "hooks"
    assert fx.fx_error is None
    key = [(s.path, s.kind, s.p, s.fed_by, s.feeds) for s in fx.flows()]
    assert key == [(s.path, s.kind, s.p, s.fed_by, s.feeds) for s in hooks.flows()]
    assert key  # every model here has dropout


def test_hand_built_graph():
    """A tiny model whose graph is written out by hand."""

    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.drop, self.bn = nn.Linear(4, 4), nn.Dropout(0.25), nn.BatchNorm1d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bn(self.drop(F.dropout(self.fc(x), 0.1, self.training)) + x)

    for method in ("fx", "hooks"):
        flow = build_dataflow(M(), torch.randn(3, 4), method=method)
        got = [(n.op, n.path, n.inputs, n.p, n.dropout_kind) for n in flow.nodes]
        assert got == [
            ("input", "", (), None, None),
            ("linear", "fc", (0,), None, None),
            ("dropout", "", (1,), 0.1, "functional"),
            ("dropout", "drop", (2,), 0.25, "module"),
            ("add", "", (3, 0), None, None),
            ("batchnorm", "bn", (4,), None, None),
            ("output", "", (5,), None, None),
        ], method
        assert flow.ancestors(5) == frozenset({0, 1, 2, 3, 4})
        assert flow.users(0) == [1, 4]


def test_untraceable_model_uses_hooks():
    model = Untraceable()
    for sign in (1.0, -1.0):  # the graph follows the branch this input takes
        # fc1(x).sum() = 1'Wx + 1'b, so x = 10 * sign * W'1 gives it the sign of `sign`
        x = 10 * sign * model.fc1.weight.sum(0, keepdim=True).repeat(2, 1)
        took_relu = bool(model.fc1(x).sum() > 0)
        assert took_relu == (sign > 0)
        flow = build_dataflow(model, x)
        assert flow.method == "hooks"
        assert "TraceError" in (flow.fx_error or "")
        [site] = flow.flows()
        before = "relu in <root>" if took_relu else "Linear at fc1"
        assert (site.path, site.fed_by, site.feeds) == ("drop", (before,), ("Linear at fc2",))
    with pytest.raises(DropkitValueError, match="`model` to be a model torch.fx can trace"):
        build_dataflow(model, VEC, method="fx")


def test_transformer_encoder_sites_by_hooks():
    enc = transformer_encoder()
    flow = build_dataflow(enc, torch.randn(2, 5, 16))
    assert flow.method == "hooks"
    kinds = sorted((s.path, s.kind) for s in flow.flows())
    assert kinds == sorted([(f"layers.{i}.{n}", "module")
                            for i in range(2) for n in ("dropout", "dropout1", "dropout2")]
                           + [(f"layers.{i}.self_attn", "attention") for i in range(2)])


def test_gpt_sees_attention_dropout_at_run_time():
    gpt = GPT(dropout=0.2)
    flow = build_dataflow(gpt, torch.randint(0, 32, (2, 8)))
    att = [n for n in flow.dropout_nodes if n.dropout_kind == "attention"]
    assert [(n.path, n.name, n.p) for n in att] == [
        (f"h.{i}.attn", "scaled_dot_product_attention", 0.2) for i in range(2)]
    # the attention dropout is fed by the reshaped q, k, v projections of c_attn
    assert flow.flows()[1].fed_by == ("Linear at h.0.attn.c_attn",)


def test_model_and_rng_are_borrowed():
    tok = torch.randint(0, 8, (2, 4))
    for model, x in ((ResNet("stream"), IMG), (Untraceable(), VEC), (GPT(), tok)):
        model.train()
        model.get_submodule(next(n for n, _ in model.named_children())).eval()  # mixed flags
        snap = _snapshot(model)
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        lint(model, x)
        assert torch.equal(torch.rand(3), expected)  # global RNG untouched
        assert _same(model, snap)


def test_borrowed_also_on_error():
    model = vgg_like().train()
    snap = _snapshot(model)
    with pytest.raises(DropkitValueError, match="example_input.*forward raised RuntimeError"):
        lint(model, torch.randn(2, 5, 8, 8))  # 5 channels, the first conv wants 3
    assert _same(model, snap)


def test_bad_arguments():
    with pytest.raises(DropkitTypeError, match="`model` to be a torch.nn.Module"):
        build_dataflow("model", IMG)
    with pytest.raises(DropkitTypeError, match="`example_input` to be a torch.Tensor or a tuple"):
        build_dataflow(vgg_like(), [[1.0, 2.0]])
    with pytest.raises(DropkitValueError, match="`method` to be one of 'auto', 'fx', 'hooks'"):
        build_dataflow(vgg_like(), IMG, method="jit")
    with pytest.raises(DropkitValueError, match="`example_input`.*GPT|block size"):
        build_dataflow(GPT(block_size=4), torch.randint(0, 8, (2, 6)))
