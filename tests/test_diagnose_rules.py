"""Each lint rule: a model that triggers it and one that does not; finding fields; ordering."""

from __future__ import annotations

import pytest
import torch
from lint_models import (
    GPT,
    DenseBlock,
    FunctionalDropout,
    HardCodedDropout,
    HelperDropout,
    IfGatedDropout,
    ResNet,
    SharedFlagDropout,
    Untraceable,
    alexnet_head,
    conv_dropout,
    layernorm_dropout,
    logits_dropout,
    mlp,
    placeholder_and_live,
    transformer_encoder,
    vgg_like,
)
from torch import nn

from dropkit.diagnose import RULES, Finding, lint
from dropkit.errors import DropkitValueError
from dropkit.inspection.discover import find_dropout

IMG = torch.randn(2, 3, 8, 8)
VEC = torch.randn(2, 8)
TOK = torch.randint(0, 32, (2, 8))
SEQ = torch.randn(2, 5, 16)

# rule -> (triggering models with the paths they must report, models that must not trigger it)
CASES = {
    "dropout-before-batchnorm": (
        [(DenseBlock, IMG, {"layers.0"}), (lambda: ResNet("wide"), IMG,
                                           {"blocks.0.dropout", "blocks.1.dropout"}),
         (Untraceable, VEC, {"drop"})],
        [(vgg_like, IMG), (lambda: ResNet("none"), IMG), (transformer_encoder, SEQ)],
    ),
    "dropout-on-residual-stream": (
        [(lambda: ResNet("stream"), IMG, {"blocks.0.dropout"}),
         (lambda: ResNet("skip"), IMG, {"blocks.0.dropout", "blocks.1.dropout"}),
         (lambda: GPT(stream_dropout=True), TOK, {"h.0.stream", "h.1.stream"})],
        [(GPT, TOK), (lambda: ResNet("wide"), IMG), (lambda: ResNet("none"), IMG),
         (transformer_encoder, SEQ)],
    ),
    "dropout-on-embeddings": (
        [(GPT, TOK, {"drop"})],
        [(lambda: GPT(stream_dropout=True, dropout=0.0), TOK), (mlp, VEC)],
    ),
    "dropout-on-logits": ([(logits_dropout, VEC, {"3"})], [(vgg_like, IMG), (mlp, VEC)]),
    "dropout-after-layernorm": (
        [(layernorm_dropout, VEC, {"2"})], [(GPT, TOK), (transformer_encoder, SEQ)],
    ),
    # one grouped info at the sites' common path; alone, it also says MC dropout is impossible
    "dead-dropout": ([(lambda: mlp(0.0), VEC, {"2"}), (placeholder_and_live, VEC, {"3"})],
                     [(mlp, VEC), (GPT, TOK)]),
    "high-rate-conv-dropout": (
        [(conv_dropout, IMG, {"2"}), (lambda: conv_dropout(0.5, nn.Dropout2d), IMG, {"2"})],
        [(lambda: conv_dropout(0.2), IMG), (alexnet_head, IMG), (vgg_like, IMG)],
    ),
    "uncontrollable-dropout": (
        [(HardCodedDropout, VEC, {""}), (SharedFlagDropout, VEC, {""})],
        [(FunctionalDropout, VEC), (IfGatedDropout, VEC), (GPT, TOK),
         (lambda: ResNet("stream"), IMG)],
    ),
    # p=0-only models are said once, by dead-dropout (not also "no dropout at all")
    "no-dropout": (
        [(lambda: mlp(None), VEC, {""}), (HardCodedDropout, VEC, {""})],
        [(mlp, VEC), (FunctionalDropout, VEC), (GPT, TOK), (lambda: mlp(0.0), VEC)],
    ),
}


def test_every_rule_has_cases():
    assert set(CASES) == set(RULES)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_triggers_and_does_not(rule):
    torch.manual_seed(0)
    hits, clean = CASES[rule]
    for make, x, paths in hits:
        found = [f for f in lint(make(), x) if f.rule == rule]
        assert {f.path for f in found} == paths, (rule, make)
    for make, x in clean:
        assert not [f for f in lint(make(), x) if f.rule == rule], (rule, make)


def test_clean_reference_architectures_have_no_findings():
    for make, x in ((vgg_like, IMG), (alexnet_head, IMG), (transformer_encoder, SEQ),
                    (FunctionalDropout, VEC), (lambda: ResNet("none"), IMG)):
        result = lint(make(), x)
        assert list(result) == [] and result.exit_code == 0, make


def test_severities_and_fields():
    result = lint(HardCodedDropout(), VEC)
    assert [(f.rule, f.severity) for f in result] == [
        ("uncontrollable-dropout", "error"), ("no-dropout", "warning")]
    assert "hard-coded on" in result[0].message and "line" in result[0].message
    assert "mc_mode cannot switch its dropout" in result[1].message
    assert "has no dropout at all" in lint(mlp(None), VEC)[0].message
    [dead] = lint(mlp(0.0), VEC, select=["no-dropout"])  # alone, no-dropout says it: an info
    assert (dead.severity, dead.related) == ("info", ("2",))
    assert "its only dropout has p=0" in dead.message
    [dead] = lint(mlp(0.0), VEC)
    assert (dead.rule, dead.path, dead.severity, dead.related) == ("dead-dropout", "2", "info",
                                                                   ("2",))
    assert lint(SharedFlagDropout(), VEC)[0].severity == "warning"
    assert lint(GPT(), TOK)[0].severity == "info"
    for make, x in ((DenseBlock, IMG), (GPT, TOK), (logits_dropout, VEC), (lambda: mlp(0.0), VEC)):
        for f in lint(make(), x):
            assert isinstance(f, Finding) and f.rule in RULES
            assert f.severity in ("error", "warning", "info")
            assert f.message and f.fix
    bn = lint(DenseBlock(), IMG)[0]
    assert "CVPR 2019" in bn.reference and "recalibrate_bn" in bn.fix
    assert "feeds BatchNorm layers.1.norm1 directly" in bn.message  # through torch.cat only
    assert "feeds BatchNorm bn through Linear at fc2" in lint(Untraceable(), VEC)[0].message


def test_exit_code_follows_severity():
    assert lint(GPT(), TOK).exit_code == 0  # info only
    assert lint(DenseBlock(), IMG).exit_code == 1  # a warning
    assert lint(HardCodedDropout(), VEC).exit_code == 1  # an error


def test_static_rules_without_an_example_input():
    result = lint(mlp(0.0))
    assert result.method == "none" and result.flows == []
    assert [(f.rule, f.path, f.severity) for f in result] == [("dead-dropout", "2", "info")]
    assert lint(conv_dropout(0.5, nn.Dropout2d)).rules() == {"high-rate-conv-dropout"}


def test_select_and_bad_rule():
    assert lint(lambda_model := mlp(0.0), VEC, select=["no-dropout"]).rules() == {"no-dropout"}
    with pytest.raises(DropkitValueError, match="`select` to be rule ids"):
        lint(lambda_model, VEC, select=["dropout-everywhere"])


def test_table_and_json():
    result = lint(DenseBlock(), IMG)
    text = str(result)
    assert "dataflow: torch.fx" in text and "dropout-before-batchnorm" in text
    assert "fix: " in text and "1 warning(s)" in text
    data = result.to_dict()
    assert data["method"] == "fx" and data["findings"][0]["rule"] == "dropout-before-batchnorm"
    assert {s["path"] for s in data["sites"]} == {"layers.0", "layers.1"}


class _ModuleCall(nn.Module):
    """``self.dropout(x)`` calls a Dropout child: a module site, not F.dropout (on)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.dropout = nn.Linear(8, 4), nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc(x))


def test_module_named_dropout_is_not_hard_coded_functional_dropout():
    model = _ModuleCall()
    assert not [f for f in lint(model, VEC) if f.rule == "uncontrollable-dropout"]
    assert {s.path for s in find_dropout(model).controllable} == {"dropout"}
    assert lint(HardCodedDropout(), VEC)[0].rule == "uncontrollable-dropout"


def test_if_gated_functional_dropout_is_seen_at_run_time():
    result = lint(IfGatedDropout(), VEC)
    assert list(result) == []  # controllable, and mc_mode's flag makes the forward run it
    assert [(s.path, s.kind, s.p, s.fed_by) for s in result.flows] == [
        ("", "functional", 0.3, ("relu in <root>",))]


def test_dropout_outside_the_class_source_is_reported():
    [f] = [f for f in lint(HelperDropout(), VEC) if f.rule == "uncontrollable-dropout"]
    assert f.path == "" and "not in the source" in f.message and f.severity == "warning"


def test_docstring_examples_run():
    import doctest
    import importlib

    for name in ("dropkit.diagnose.linter", "dropkit.diagnose.recalibrate"):
        result = doctest.testmod(importlib.import_module(name))
        assert result.attempted > 0 and result.failed == 0, name
