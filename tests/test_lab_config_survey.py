"""The configuration survey: its numbers equal the libraries' defaults, read independently here."""

from __future__ import annotations

import importlib.util
import inspect

import pytest
import torch

from dropkit.lab import config_survey as C

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def survey():
    return C.measure(C.Settings.quick())


def _row(survey, library, model):
    (row,) = [r for r in survey["rows"] if r["library"] == library and r["model"] == model]
    return row


def test_transformers_rates_equal_the_config_classes(survey):
    bert = transformers.BertConfig()
    assert bert.hidden_dropout_prob == 0.1  # the documented default
    assert _row(survey, "transformers", "bert")["rates"] == {
        "attention_probs_dropout_prob": bert.attention_probs_dropout_prob,
        "hidden_dropout_prob": bert.hidden_dropout_prob}
    gpt2 = transformers.GPT2Config()
    assert _row(survey, "transformers", "gpt2")["rates"] == {
        "attn_pdrop": gpt2.attn_pdrop, "embd_pdrop": gpt2.embd_pdrop,
        "resid_pdrop": gpt2.resid_pdrop}  # summary_first_dropout is a head's, left out
    assert _row(survey, "transformers", "t5")["rates"] == {
        "dropout_rate": transformers.T5Config().dropout_rate}
    llama = _row(survey, "transformers", "llama")
    assert llama["rates"] == {"attention_dropout": transformers.LlamaConfig().attention_dropout}
    assert llama["max_rate"] == 0.0


def test_gpt2_parameter_count_by_hand(survey):
    c = transformers.GPT2Config()
    d, v, n, L = c.n_embd, c.vocab_size, c.n_positions, c.n_layer
    per_layer = (2 * d) + (d * 3 * d + 3 * d) + (d * d + d) + (2 * d) + (d * 4 * d + 4 * d) \
        + (4 * d * d + d)  # ln_1, qkv, attention proj, ln_2, MLP up, MLP down
    assert _row(survey, "transformers", "gpt2")["params"] == v * d + n * d + L * per_layer + 2 * d


def test_source_parsing_equals_the_imported_classes():
    for name, module in (("BertConfig", "bert"), ("Qwen2Config", "qwen2"),
                         ("LlamaConfig", "llama")):
        spec = importlib.util.find_spec(f"transformers.models.{module}.configuration_{module}")
        parsed = C.class_defaults_from_source(spec.origin, name)
        real = getattr(transformers, name)()
        rates = C.backbone_rates(parsed)
        assert rates, name
        assert rates == C.backbone_rates(real.to_dict()), name


def test_backbone_rates_leave_out_heads_and_non_numbers():
    got = C.backbone_rates({"hidden_dropout_prob": 0.1, "classifier_dropout": None,
                            "summary_first_dropout": 0.1, "attn_pdrop": 0, "hidden_size": 768,
                            "drop_path_rate": 0.2, "use_dropout": True})
    assert got == {"attn_pdrop": 0.0, "drop_path_rate": 0.2, "hidden_dropout_prob": 0.1}


def test_timm_rows_equal_the_models_own_defaults(survey):
    timm = pytest.importorskip("timm")
    from timm.models.efficientnet import EfficientNet
    from timm.models.resnet import ResNet

    for name, cls in (("resnet50", ResNet), ("efficientnet_b0", EfficientNet)):
        row = _row(survey, "timm", name)
        default = inspect.signature(cls.__init__).parameters["drop_rate"].default
        assert row["rates"]["dropout"] == default, name
        assert row["batchnorm"] is True
    with torch.device("meta"):  # no weights: only the modules' attributes are read
        model = timm.create_model("vgg16", pretrained=False)
    ps = [m.p for m in model.modules() if type(m).__name__ == "Dropout"]
    assert _row(survey, "timm", "vgg16")["rates"]["dropout"] == max(ps + [model.drop_rate])


def test_torchvision_rows_equal_the_built_models(survey):
    pytest.importorskip("torchvision")
    from torchvision import models

    eff = models.efficientnet_b0(weights=None)
    assert eff.classifier[0].p == 0.2  # torchvision's documented EfficientNet-B0 default
    assert _row(survey, "torchvision", "efficientnet_b0")["rates"]["dropout"] == 0.2
    with torch.device("meta"):  # no weights: only attributes and shapes are read
        vgg, resnet50 = models.vgg16(weights=None), models.resnet50(weights=None)
    assert _row(survey, "torchvision", "vgg16")["rates"]["dropout"] == max(
        m.p for m in vgg.classifier if hasattr(m, "p"))
    resnet = _row(survey, "torchvision", "resnet50")
    assert resnet["rates"] == {"dropout": 0.0, "drop_path": 0.0}
    assert resnet["batchnorm"] is True
    assert resnet["params"] == sum(p.numel() for p in resnet50.parameters())


def test_a_library_that_fails_to_import_is_reported(monkeypatch):
    real = C._import

    def fake(name):
        return (None, f"{name}: not importable here (test)") if name == "timm" else real(name)

    monkeypatch.setattr(C, "_import", fake)
    out = C.measure(C.Settings(decoder_lms=(), encoders=("bert",), vision_transformers=(),
                               timm_cnns=("resnet18",), torchvision_cnns=(),
                               count_params=False))
    assert out["unavailable"] == ["timm: not importable here (test)"]
    assert [r["library"] for r in out["rows"]] == ["transformers"]


def _cnn(model, bn, dropout, drop_path=0.0, library="timm"):
    return {"model": model, "library": library, "group": "cnn", "batchnorm": bn,
            "rates": {"dropout": dropout, "drop_path": drop_path}, "max_rate": dropout,
            "params": 1}


def _lm(model, params, rate):
    return {"model": model, "library": "transformers", "group": "decoder_lm",
            "batchnorm": None, "params": params, "max_rate": rate, "rates": {}}


def test_rules_on_made_up_tables():
    rows = [_cnn("a", True, 0.0), _cnn("b", True, 0.0, 0.1), _cnn("c", True, 0.2),
            _cnn("d", False, 0.0), _lm("big1", 7e9, 0.0), _lm("big2", 2e9, 0.05),
            _lm("big3", 3e9, 0.1), _lm("small", 1e8, 0.1)]
    bn, scale = C.judge([{"rows": rows}])
    assert bn["numbers"]["share"] == 2 / 4  # a and b: BatchNorm, no dropout
    assert bn["numbers"]["share_without_drop_path_either"] == 1 / 4
    assert bn["verdict"] == "partly supported"
    assert scale["numbers"]["share"] == 2 / 3  # rate 0.05 counts as very low
    assert scale["verdict"] == "partly supported"
    assert scale["numbers"]["smaller_max_rates"] == {"small": 0.1}
    bn, scale = C.judge([{"rows": rows[:2] + rows[4:6]}])
    assert (bn["verdict"], scale["verdict"]) == ("not judged", "not judged")  # < 3 models
    bn, _ = C.judge([{"rows": [_cnn(str(i), True, 0.0) for i in range(3)] + rows[2:3]}])
    assert bn["verdict"] == "supported"  # 3 of 4


def test_quick_survey_verdicts_follow_the_rules(survey):
    bn, scale = C.judge([survey])
    lms = [r for r in survey["rows"] if r["group"] == "decoder_lm"
           and r["params"] is not None and r["params"] >= C.LARGE_PARAMS]
    assert {r["model"] for r in lms} == {"llama", "mistral", "qwen2"}  # GPT-2 is 124M
    assert scale["numbers"]["share"] == 1.0 and scale["verdict"] == "supported"
    table = C.table_markdown(survey["rows"])
    assert "| bert | transformers |" in table and "hidden_dropout_prob=0.1" in table


def test_figure_counts_the_table(survey):
    import matplotlib.pyplot as plt

    (fig,) = C.figures([survey])
    try:
        bars = fig.axes[1].patches  # stacked: per kind, one bar per library (timm, torchvision)
        first = [b.get_height() for b in bars[:2]]
        want = [sum(1 for r in survey["rows"] if r["library"] == lib and r["group"] == "cnn"
                    and r["batchnorm"] and r["rates"]["dropout"] == 0)
                for lib in ("timm", "torchvision")]
        assert first == want
        # one point per surveyed transformer with a size and a rate, and no overlapping text
        # (the report's layout check)
        from dropkit.report.layout import layout_problems

        drawn = [r for r in survey["rows"] if r["params"] and r["max_rate"] is not None
                 and r["group"] in ("decoder_lm", "encoder", "vision_transformer")]
        points = sum(len(c.get_offsets()) for c in fig.axes[0].collections)
        assert points == len(drawn)
        assert layout_problems(fig) == []
    finally:
        plt.close(fig)


def test_size_estimate_when_the_model_cannot_be_built(survey, monkeypatch):
    gpt2 = transformers.GPT2Config()
    d, L, v = gpt2.n_embd, gpt2.n_layer, gpt2.vocab_size
    est = C.estimate_params(gpt2.to_dict())
    assert est == 12 * L * d * d + v * d
    counted = _row(survey, "transformers", "gpt2")["params"]
    assert abs(est - counted) / counted < 0.02  # the estimate is close for a dense model
    monkeypatch.setattr(C, "_meta_model_facts", lambda tf, config: (None, None))
    out = C.measure(C.Settings(decoder_lms=("gpt2",), encoders=(), vision_transformers=(),
                               timm_cnns=(), torchvision_cnns=()))
    (row,) = out["rows"]
    assert row["params"] == est and row["params_source"].startswith("estimate")


def test_survey_statements_from_made_up_tables():
    from dropkit.lab.survey_claims import _statement

    rows = [_cnn("a", True, 0.0), _cnn("b", True, 0.0), _cnn("c", True, 0.0),
            _cnn("d", True, 0.2), _lm("big1", 7e9, 0.0), _lm("big2", 2e9, 0.1)]
    bn, scale = (_statement(r) for r in C.judge([{"rows": rows}]))
    assert (bn.id, bn.group, bn.verdict, bn.kind) == ("bn.practice", "batchnorm", "supported",
                                                      "descriptive")
    assert [c.measured for c in bn.conditions] == ["3/4 = 0.75", "0.75"]
    assert [c.holds for c in bn.conditions] == [True, True]
    assert scale is None  # two large LMs: too few to judge, so the statement is left out
    assert "otherwise not supported" in bn.criterion
