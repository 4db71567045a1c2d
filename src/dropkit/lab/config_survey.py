"""What models do: default dropout rates read from the libraries installed here (no downloads).

Answers two descriptive statements of the lab from the default configurations shipped in
installed libraries, each number with its source:

* [bn.practice] "many modern CNNs use BatchNorm without dropout": timm's and torchvision's CNN
  builders are instantiated with their defaults (``pretrained=False``, on the meta device: no
  weights, no memory) and their modules read: dropout modules' ``p``, ``drop_rate`` attributes
  (functional dropout in heads and dense layers), drop-path / stochastic-depth rates, and
  whether any BatchNorm layer is present.
* [scale.nodrop] "modern large models use no or very low dropout": transformers' configuration
  classes read for every attribute that names a dropout rate (``hidden_dropout_prob``,
  ``resid_pdrop``, ``attention_dropout``, ``dropout_rate``, ``layerdrop``, ...); the parameter
  count of the default configuration is measured by building the model on the meta device.

A library that is missing, or fails to import (torchvision 0.28.0 is a CUDA build whose ops do
not load beside a CPU torch, and timm imports torchvision), is reported as such in the table.
A transformers configuration class that fails to import is read from its source file instead
(the class-level defaults, parsed with ``ast``, never executed); the row's source says so.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.metadata
import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# Attribute names that hold a dropout-like rate; heads used only by task-specific wrappers
# (classifier, QA, summary, pooler) are not the backbone's rates and are left out.
RATE_NAME = re.compile(r"dropout|pdrop|drop_rate|drop_path|layerdrop")
HEAD_NAME = re.compile(r"^(classifier|summary|seq_classif|qa|pooler)_")

VERY_LOW = 0.05  # [scale.nodrop]: "no or very low" means every backbone rate <= this
LARGE_PARAMS = 1e9  # [scale.nodrop]: a "large" model has at least this many parameters
SUPPORT_SHARE = 0.75  # share of the surveyed models that must agree for "supported"
PARTLY_SHARE = 0.5  # ... and for "partly supported"
MIN_MODELS = 3  # fewer surveyed models than this: the statement is not judged

DECODER_LMS = ("gpt2", "gpt_neo", "gptj", "gpt_neox", "opt", "bloom", "falcon", "llama",
               "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "olmo", "olmo2",
               "stablelm")
ENCODERS = ("bert", "roberta", "albert", "distilbert", "electra", "deberta-v2", "xlm-roberta",
            "t5", "bart")
VISION_TRANSFORMERS = ("vit", "deit", "beit", "swin", "convnext")
TIMM_CNNS = ("resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2", "densenet121",
             "efficientnet_b0", "efficientnetv2_rw_s", "mobilenetv2_100",
             "mobilenetv3_large_100", "regnety_016", "convnext_tiny", "inception_v3", "vgg16",
             "ghostnet_100", "rexnet_100")
TORCHVISION_CNNS = ("resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2",
                    "densenet121", "efficientnet_b0", "efficientnet_v2_s", "mobilenet_v2",
                    "mobilenet_v3_large", "regnet_y_1_6gf", "convnext_tiny", "inception_v3",
                    "vgg16", "googlenet", "shufflenet_v2_x1_0", "mnasnet1_0")


@dataclass(frozen=True)
class Settings:
    """Which models are surveyed (transformers model types, timm and torchvision names)."""

    decoder_lms: tuple[str, ...] = DECODER_LMS
    encoders: tuple[str, ...] = ENCODERS
    vision_transformers: tuple[str, ...] = VISION_TRANSFORMERS
    timm_cnns: tuple[str, ...] = TIMM_CNNS
    torchvision_cnns: tuple[str, ...] = TORCHVISION_CNNS
    # Designs from before BatchNorm: in the table, not in [bn.practice]'s share of modern CNNs.
    pre_batchnorm: tuple[str, ...] = ("vgg16",)
    count_params: bool = True  # build each transformers model on the meta device

    @classmethod
    def quick(cls) -> Settings:
        return cls(decoder_lms=("gpt2", "llama", "mistral", "qwen2"), encoders=("bert", "t5"),
                   vision_transformers=("vit",), timm_cnns=("resnet50", "efficientnet_b0",
                                                            "vgg16"),
                   torchvision_cnns=("resnet50", "efficientnet_b0", "vgg16"))


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _import(name: str) -> tuple[Any, str | None]:
    """The module, or None and why not (missing, or its import failed)."""
    if importlib.util.find_spec(name) is None:
        return None, f"{name}: not installed"
    try:
        return importlib.import_module(name), None
    except Exception as err:  # noqa: BLE001 - any import failure is reported, not raised
        return None, f"{name}: not importable here ({type(err).__name__}: {str(err)[:120]})"


# ---------------------------------------------------------------------------------------------
# transformers: configuration classes
# ---------------------------------------------------------------------------------------------


def backbone_rates(values: dict[str, Any]) -> dict[str, float]:
    """The dropout-like rates among a configuration's attributes (numbers only, heads left out)."""
    return {k: float(v) for k, v in sorted(values.items())
            if RATE_NAME.search(k) and not HEAD_NAME.match(k)
            and isinstance(v, (int, float)) and not isinstance(v, bool)}


def class_defaults_from_source(path: str, class_name: str) -> dict[str, Any]:
    """Literal defaults of a class, read from its source without running it.

    Class-level annotated defaults (``name: type = 0.1``, the dataclass style of transformers
    5) and ``__init__`` keyword defaults (the older style); values that are not literals are
    skipped.
    """
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    out: dict[str, Any] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ClassDef) and node.name == class_name):
            continue
        for item in node.body:
            if (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
                    and item.value is not None):
                with contextlib.suppress(ValueError):
                    out[item.target.id] = ast.literal_eval(item.value)
            elif isinstance(item, ast.FunctionDef) and item.name == "__init__":
                args = item.args.args[len(item.args.args) - len(item.args.defaults):]
                pairs = [*zip(args, item.args.defaults, strict=True),
                         *zip(item.args.kwonlyargs, item.args.kw_defaults, strict=True)]
                for arg, default in pairs:
                    if default is None:  # a keyword-only argument without a default
                        continue
                    with contextlib.suppress(ValueError):
                        out.setdefault(arg.arg, ast.literal_eval(default))
    return out


def _transformers_row(model_type: str, group: str, tf: Any, s: Settings) -> dict[str, Any]:
    from transformers.models.auto.configuration_auto import (
        CONFIG_MAPPING_NAMES,
        model_type_to_module_name,
    )

    class_name = CONFIG_MAPPING_NAMES.get(model_type, "?")
    row: dict[str, Any] = {"model": model_type, "library": "transformers",
                           "version": tf.__version__, "group": group, "batchnorm": None,
                           "params": None}
    try:
        config = tf.AutoConfig.for_model(model_type)
        values = config.to_dict()
        row["source"] = f"transformers.{class_name}() attributes"
    except Exception as err:  # noqa: BLE001 - fall back to reading the source
        module = (f"transformers.models.{model_type_to_module_name(model_type)}."
                  f"configuration_{model_type_to_module_name(model_type)}")
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            row.update(rates={}, max_rate=None, source=f"{class_name}: not found ({err!r:.80})")
            return row
        values = class_defaults_from_source(spec.origin, class_name)
        config = None
        row["source"] = (f"transformers.{class_name} class defaults parsed from "
                         f"{module.rsplit('.', 1)[1]}.py (import failed: "
                         f"{type(err).__name__})")
    rates = backbone_rates(values)
    row["rates"] = rates
    row["max_rate"] = max(rates.values(), default=0.0)  # no rate attribute: no dropout
    if config is not None and s.count_params:
        row["params"], row["batchnorm"] = _meta_model_facts(tf, config)
        row["params_source"] = "counted on the meta device"
    if row["params"] is None:  # the model could not be built here (or counting is off)
        row["params"] = estimate_params(values)
        row["params_source"] = "estimate 12 L d^2 + V d (the model was not built)"
    return row


def estimate_params(values: dict[str, Any]) -> int | None:
    """The usual estimate of a transformer's size, ``12 L d^2 + V d`` (Kaplan et al., 2020).

    ``d``: the hidden size, ``L``: the layers, ``V``: the vocabulary. Within a few percent for
    dense models (GPT-2: 124M either way); it undercounts mixtures of experts.
    """
    def first(*names: str) -> int | None:
        found = [values[n] for n in names if isinstance(values.get(n), int)]
        return found[0] if found else None

    d = first("hidden_size", "n_embd", "d_model")
    layers = first("num_hidden_layers", "n_layer", "num_layers")
    vocab = first("vocab_size")
    if d is None or layers is None or vocab is None:
        return None
    return 12 * layers * d * d + vocab * d


def _meta_model_facts(tf: Any, config: Any) -> tuple[int | None, bool | None]:
    """Parameter count and BatchNorm presence of the default model, built on the meta device."""
    try:
        with torch.device("meta"):
            model = tf.AutoModel.from_config(config)
    except Exception:  # noqa: BLE001 - a model that cannot be built keeps its rates only
        return None, None
    return (sum(p.numel() for p in model.parameters()),
            any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()))


# ---------------------------------------------------------------------------------------------
# timm and torchvision: instantiated builders
# ---------------------------------------------------------------------------------------------


def module_rates(model: nn.Module) -> dict[str, Any]:
    """Dropout, drop-path and BatchNorm facts of an instantiated model.

    ``dropout``: the largest ``p`` of a dropout module or ``drop_rate`` attribute (functional
    dropout: timm heads, torchvision's DenseNet layers); ``drop_path``: the largest drop-path /
    stochastic-depth rate; ``where``: for each ``Class.attribute`` found, its largest value and
    how many modules have it.
    """
    found: dict[str, list[float]] = {}
    for m in model.modules():
        name = type(m).__name__
        if isinstance(m, nn.modules.dropout._DropoutNd):
            found.setdefault(f"{name}.p", []).append(float(m.p))
        elif name in ("DropPath", "StochasticDepth"):
            attr = "drop_prob" if hasattr(m, "drop_prob") else "p"
            found.setdefault(f"{name}.{attr}", []).append(float(getattr(m, attr) or 0.0))
        rate = getattr(m, "drop_rate", None)
        if isinstance(rate, (int, float)) and not isinstance(rate, bool):
            found.setdefault(f"{name}.drop_rate", []).append(float(rate))
    path_keys = {k for k in found if k.startswith(("DropPath.", "StochasticDepth."))}
    return {"dropout": max((max(v) for k, v in found.items() if k not in path_keys),
                           default=0.0),
            "drop_path": max((max(found[k]) for k in path_keys), default=0.0),
            "where": [f"{k}={max(v):g}" + (f" (max of {len(v)})" if len(v) > 1 else "")
                      for k, v in sorted(found.items())],
            "batchnorm": any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                             for m in model.modules())}


def _cnn_row(name: str, library: str, version: str, build: Any, call: str, group: str
             ) -> dict[str, Any]:
    row: dict[str, Any] = {"model": name, "library": library, "version": version,
                           "group": group, "params": None, "source": call}
    try:
        try:
            with torch.device("meta"):
                model = build()
        except (NotImplementedError, RuntimeError):  # an init that copies data: build for real
            model = build()
    except Exception as err:  # noqa: BLE001 - one failing builder does not stop the survey
        row.update(rates={}, max_rate=None, batchnorm=None,
                   note=f"could not build: {type(err).__name__}: {str(err)[:100]}")
        return row
    facts = module_rates(model)
    row.update(rates={"dropout": facts["dropout"], "drop_path": facts["drop_path"]},
               max_rate=facts["dropout"], batchnorm=facts["batchnorm"],
               params=sum(p.numel() for p in model.parameters()),
               source=f"{call}: " + (", ".join(facts["where"]) or "no dropout module or rate"))
    return row


def _cnn_group(name: str, s: Settings) -> str:
    return "cnn_pre_batchnorm" if name in s.pre_batchnorm else "cnn"


def _timm_rows(s: Settings, unavailable: list[str]) -> list[dict[str, Any]]:
    timm, why = _import("timm") if s.timm_cnns else (None, None)
    if timm is None:
        unavailable += [why] if why else []
        return []
    return [_cnn_row(n, "timm", timm.__version__,
                     lambda n=n: timm.create_model(n, pretrained=False),
                     f"timm.create_model({n!r}, pretrained=False)", _cnn_group(n, s))
            for n in s.timm_cnns]


def _torchvision_rows(s: Settings, unavailable: list[str]) -> list[dict[str, Any]]:
    tv, why = _import("torchvision") if s.torchvision_cnns else (None, None)
    if tv is None:
        unavailable += [why] if why else []
        return []
    models = importlib.import_module("torchvision.models")
    return [_cnn_row(n, "torchvision", tv.__version__,
                     lambda n=n: models.get_model(n, weights=None),
                     f"torchvision.models.get_model({n!r}, weights=None)", _cnn_group(n, s))
            for n in s.torchvision_cnns]


# ---------------------------------------------------------------------------------------------
# the survey and its verdicts
# ---------------------------------------------------------------------------------------------


def measure(s: Settings, seed: int = 0) -> dict[str, Any]:
    """The table: one row per model (``seed`` is unused: reading defaults is deterministic)."""
    del seed
    unavailable: list[str] = []
    rows: list[dict[str, Any]] = []
    tf, why = _import("transformers")
    if tf is None:
        unavailable.append(why or "transformers: unavailable")
    else:
        for group, types in (("decoder_lm", s.decoder_lms), ("encoder", s.encoders),
                             ("vision_transformer", s.vision_transformers)):
            rows += [_transformers_row(t, group, tf, s) for t in types]
    rows += _timm_rows(s, unavailable)
    rows += _torchvision_rows(s, unavailable)
    return {"rows": rows, "unavailable": unavailable,
            "versions": {d: _version(d) for d in ("transformers", "timm", "torchvision")}}


def _share_verdict(share: float | None, n: int) -> str:
    if share is None or n < MIN_MODELS:
        return "not judged"
    if share >= SUPPORT_SHARE:
        return "supported"
    return "partly supported" if share >= PARTLY_SHARE else "not supported"


def judge(per_seed: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Verdicts of [bn.practice] and [scale.nodrop] from the table (the first seed's)."""
    rows = per_seed[0]["rows"]
    share_rule = (f"supported if at least {SUPPORT_SHARE:.0%} of them do, partly supported if "
                  f"at least {PARTLY_SHARE:.0%}, not supported below; not judged with fewer "
                  f"than {MIN_MODELS} models surveyed")

    cnns = [r for r in rows if r["group"] == "cnn" and r["batchnorm"] is not None]
    bn_no_drop = [r for r in cnns if r["batchnorm"] and r["rates"]["dropout"] == 0.0]
    neither = [r for r in bn_no_drop if r["rates"]["drop_path"] == 0.0]
    by_lib = {lib: [r for r in cnns if r["library"] == lib] for lib in ("timm", "torchvision")}
    bn_share = len(bn_no_drop) / len(cnns) if cnns else None
    bn = {"id": "bn.practice", "verdict": _share_verdict(bn_share, len(cnns)),
          "criterion": ("share of the surveyed modern CNN builders (timm and torchvision, "
                        "default arguments; designs from before BatchNorm such as VGG-16 left "
                        "out) that contain a BatchNorm layer and no dropout (no dropout module "
                        "with p > 0 and no drop_rate > 0; drop path counted apart): "
                        + share_rule),
          "numbers": {"cnns": len(cnns), "batchnorm_no_dropout": len(bn_no_drop),
                      "share": bn_share,
                      "share_without_drop_path_either": len(neither) / len(cnns) if cnns
                      else None,
                      "by_library": {lib: {"cnns": len(rs), "batchnorm_no_dropout": sum(
                          1 for r in rs if r in bn_no_drop)} for lib, rs in by_lib.items()},
                      "with_dropout": sorted(f"{r['library']}:{r['model']}" for r in cnns
                                             if r["rates"]["dropout"] > 0)}}

    lms = [r for r in rows if r["group"] == "decoder_lm" and r["max_rate"] is not None]
    large = [r for r in lms if r["params"] is not None and r["params"] >= LARGE_PARAMS]
    low = [r for r in large if r["max_rate"] <= VERY_LOW]
    small = [r for r in rows if r["group"] in ("decoder_lm", "encoder")
             and r["params"] is not None and r["params"] < LARGE_PARAMS
             and r["max_rate"] is not None]
    low_share = len(low) / len(large) if large else None
    scale = {"id": "scale.nodrop", "verdict": _share_verdict(low_share, len(large)),
             "criterion": (f"share of the decoder language models whose default configuration "
                           f"has at least {LARGE_PARAMS:.0e} parameters (counted on the meta "
                           f"device, or estimated as 12 L d^2 + V d where the model cannot be "
                           f"built) and every backbone dropout rate <= {VERY_LOW:g}: "
                           + share_rule),
             "numbers": {"large_lms": len(large), "very_low_or_none": len(low),
                         "share": low_share,
                         "large_max_rates": {r["model"]: r["max_rate"] for r in large},
                         "smaller_max_rates": {r["model"]: r["max_rate"] for r in small}}}
    return [bn, scale]


def table_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The survey as a Markdown table (model, library, version, rates, BatchNorm, source)."""
    lines = ["| model | library | version | rates | max | BatchNorm | params | source |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rates = ", ".join(f"{k}={v:g}" for k, v in r.get("rates", {}).items()) or "none"
        bn = {True: "yes", False: "no", None: "n/a"}[r.get("batchnorm")]
        params = f"{r['params'] / 1e6:,.0f}M" if r.get("params") else "n/a"
        if r.get("params") and r.get("params_source", "").startswith("estimate"):
            params = "~" + params
        best = "n/a" if r.get("max_rate") is None else f"{r['max_rate']:g}"
        lines.append(f"| {r['model']} | {r['library']} | {r['version']} | {rates} | {best} | "
                     f"{bn} | {params} | {r.get('source', '')} {r.get('note', '')}".rstrip()
                     + " |")
    return "\n".join(lines)


def figures(per_seed: Sequence[dict[str, Any]]) -> list[Any]:
    """One matplotlib figure: transformers' default rates against size; CNNs by library."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = per_seed[0]["rows"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for group, color in (("decoder_lm", "C0"), ("encoder", "C1"), ("vision_transformer", "C2")):
        pts = [r for r in rows if r["group"] == group and r["params"] and r["max_rate"] is not None]
        ax1.scatter([r["params"] for r in pts], [r["max_rate"] for r in pts], color=color,
                    label=group.replace("_", " "), s=25)
        # no per-point names: with 40+ models they overlap at any size (the report's layout
        # check found six overlaps at full size); the survey's table in the report names each
    ax1.axvline(LARGE_PARAMS, color="0.5", ls=":", label=f"{LARGE_PARAMS:.0e} parameters")
    ax1.axhline(VERY_LOW, color="0.5", ls="--", label=f"rate {VERY_LOW:g}")
    ax1.set_xscale("log")
    ax1.margins(x=0.1, y=0.25)  # keep the highest points clear of the title
    ax1.set(title="transformers: default dropout vs model size",
            xlabel="parameters of the default configuration (log)",
            ylabel="largest backbone dropout rate")
    ax1.legend(fontsize=7)
    libs = ("timm", "torchvision")
    kinds = (("BatchNorm, no dropout", lambda r: r["batchnorm"] and r["rates"]["dropout"] == 0),
             ("BatchNorm and dropout", lambda r: r["batchnorm"] and r["rates"]["dropout"] > 0),
             ("no BatchNorm", lambda r: not r["batchnorm"]))
    bottom = [0] * len(libs)
    for label, test in kinds:
        counts = [sum(1 for r in rows if r["library"] == lib and r["group"] == "cnn"
                      and r["batchnorm"] is not None and test(r)) for lib in libs]
        ax2.bar(libs, counts, bottom=bottom, label=label)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    ax2.set(title="Modern CNN builders (default arguments)", ylabel="number of models")
    ax2.legend(fontsize=7)
    return [fig]
