"""mc_mode: exactly the dropout becomes stochastic; everything is restored, also on error."""

import pytest
import torch
from torch import nn

import dropkit
from tests.zoo.small import (
    CNN,
    AttentionOnly,
    Block,
    ChildNamedDropout,
    FlagAlsoGatesOther,
    FunctionalMLP,
    HardCoded,
    IfGated,
    assert_same_state,
    snapshot,
    transformer_encoder,
)

CASES = [
    (CNN, (5, 1, 8, 8), ["head.2"]),
    (FunctionalMLP, (5, 6), [""]),
    (Block, (3, 7, 16), ["attn", "attn.resid_dropout", "mlp.3"]),
    (AttentionOnly, (3, 7, 16), ["attn"]),
    (IfGated, (5, 6), [""]),
    (transformer_encoder, (3, 7, 16), None),
]


def trained_cnn() -> CNN:
    """A CNN whose BatchNorm statistics are not the defaults (so a change would show)."""
    torch.manual_seed(0)
    model = CNN()
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 1, 8, 8))
    return model


@pytest.mark.parametrize(("factory", "shape", "paths"), CASES)
@pytest.mark.parametrize("start_training", [False, True])
def test_stochastic_inside_restored_after(factory, shape, paths, start_training):
    torch.manual_seed(0)
    model = factory()
    model.train(start_training)
    x = torch.randn(*shape)
    snap = snapshot(model)
    with dropkit.mc_mode(model) as report, torch.no_grad():
        a, b = model(x), model(x)
        if paths is not None:
            assert sorted(report.stochastic) == sorted(paths)
    assert not torch.allclose(a, b), "dropout should be on inside mc_mode"
    assert_same_state(model, snap)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x)), "dropout should be off again in eval"


def test_transformer_encoder_switches_layers_attention_and_dropouts():
    model = transformer_encoder().eval()
    with dropkit.mc_mode(model) as report:
        kinds = {s.kind for s in report.sites}
        assert {"module", "attention"} <= kinds
        assert "layers.0" in report.stochastic  # or its fused eval fast path skips dropout
        assert "layers.1.self_attn" in report.stochastic


def test_batchnorm_keeps_eval_behaviour_and_statistics():
    model = trained_cnn()
    model.train()  # even a model left in training mode: BN must not update inside mc_mode
    snap = snapshot(model)
    x = torch.randn(6, 1, 8, 8)
    model.eval()
    with torch.no_grad():
        expected_features = model.features(x)
    model.train()
    seen = {}
    hook = model.features.register_forward_hook(lambda m, i, o: seen.setdefault("f", o))
    try:
        with dropkit.mc_mode(model), torch.no_grad():
            model(x)
    finally:
        hook.remove()
    torch.testing.assert_close(seen["f"], expected_features, rtol=0, atol=0)
    assert_same_state(model, snap)


def test_only_dropout_modules_change_flag():
    model = trained_cnn().eval()
    with dropkit.mc_mode(model):
        on = [name for name, m in model.named_modules() if m.training]
    assert on == ["head.2"]


def test_restored_when_block_raises():
    model = Block().train()
    model.attn.eval()  # a mixed pattern of flags must come back exactly
    snap = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"), dropkit.mc_mode(model):
        raise RuntimeError("boom")
    assert_same_state(model, snap)


def test_nesting_restores_each_level():
    model = CNN().eval()
    with dropkit.mc_mode(model):
        inner_flags = [m.training for m in model.modules()]
        with dropkit.mc_mode(model):
            pass
        assert [m.training for m in model.modules()] == inner_flags
    assert not any(m.training for m in model.modules())


def test_report_lists_uncontrollable_dropout():
    model = HardCoded().eval()
    with dropkit.mc_mode(model) as report:
        assert report.stochastic == ["drop"]
    (left,) = report.uncontrollable
    assert left.path == "" and left.kind == "functional" and left.p == 0.5
    assert "hard-coded on" in left.reason
    assert "LEFT" in str(report)


def test_flag_that_gates_other_behaviour_is_not_switched():
    model = FlagAlsoGatesOther().eval()
    with pytest.raises(dropkit.NoDropoutError, match="also switches other behaviour"), \
            dropkit.mc_mode(model):
        pass
    assert not model.training


def test_functional_p_is_read_from_the_module():
    with dropkit.mc_mode(FunctionalMLP(p=0.37)) as report:
        assert [s.p for s in report.sites] == [0.37, 0.37]


@pytest.mark.parametrize("model", [nn.Linear(3, 3), nn.Sequential(nn.Linear(3, 3),
                                                                  nn.Dropout(0.0))])
def test_no_controllable_dropout_raises(model):
    with pytest.raises(dropkit.NoDropoutError, match="Expected argument `model` to be a model with"
                       " dropout"), dropkit.mc_mode(model):
        pass
    with dropkit.mc_mode(model, on_missing="ignore") as report:
        assert report.stochastic in ([], ["1"])


def test_bad_arguments():
    with pytest.raises(dropkit.DropkitTypeError, match="`model` to be a torch.nn.Module, but got"
                       " str"), dropkit.mc_mode("net"):
        pass
    with pytest.raises(ValueError, match="`on_missing` to be one of 'raise', 'ignore'"), \
            dropkit.mc_mode(CNN(), on_missing="warn"):
        pass


def test_child_module_named_dropout_is_a_module_site():
    with dropkit.mc_mode(ChildNamedDropout()) as report:
        assert report.stochastic == ["dropout"]
        assert report.uncontrollable == [] and [s.kind for s in report.sites] == ["module"]
