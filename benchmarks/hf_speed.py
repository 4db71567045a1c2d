"""MC dropout speed on transformers of the size people use: dropkit vs a naive loop vs baal.

Not a test. Needs baal (a separate venv, see /work/shared/PEERS.md: ``pip install baal
'torch==2.13.0'``) and transformers 5.24. Run from the repository root:

    PYTHONPATH=src:. python benchmarks/hf_speed.py              # full: ~BERT-base, ~GPT-2 small
    PYTHONPATH=src:. python benchmarks/hf_speed.py --small      # smoke size (2 layers, B 2 x 16)

Models (random weights, seed 0, from configs, no download): BERT-base-shaped
``BertForSequenceClassification`` (12 layers, hidden 768, 12 heads, FFN 3072, vocab 30522, all
dropout 0.1) and GPT-2-small-shaped ``GPT2ForSequenceClassification`` (12 layers, hidden 768,
vocab 50257, all dropout 0.1; a sequence classifier so that S outputs stay small), batch 8 of 128
tokens (the second half of the last sequence is padding), SDPA attention (the transformers 5.x
default; ``--attn eager`` for the other).

Methods (S samples of the logits each, S = 20):
  dropkit auto        dropkit.sample(Logits(model), (input_ids, attention_mask), S)
                      (--call keywords: dropkit.sample(model, enc, S), the keyword form that
                      the HF support of issue 10 adds; a failure is reported, not raised)
  dropkit auto, seeded  the same with seed=0
  naive loop          model.train() (no BatchNorm here), S passes, model.eval()
  baal loop           baal MCDropoutModule + ModelWrapper.predict_on_batch (baal's own code),
                      replicate_in_memory=False
  baal replicate      the same with replicate_in_memory=True (the batch repeated S times)
Every method runs in this one process on the same inputs; rounds are interleaved (each round
runs every method once, in a rotated order) and the table reports medians. Before timing each
method runs once under the independent firing trace of tests/firing.py: "sites" is the number of
dropout sites that fired per pass (the naive loop's count is the truth), "mean z" the largest
|difference| of mean probabilities from the naive loop's, in standard errors.

Finally a per-block profile of one deterministic pass says what a cached strategy (everything
before the first dropout run once, the rest S times) can save when dropout sits in every block.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests/
import dropkit  # noqa: E402
from dropkit.mc.plan import plans  # noqa: E402
from tests.firing import FiringTrace, mean_z  # noqa: E402

Batch = dict[str, torch.Tensor]


class Logits(nn.Module):
    """A plain-tensor interface over a transformers model: ``(input_ids, attention_mask)`` or one
    dict of keyword inputs (baal passes its batch as one argument) -> ``.logits``."""

    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.hf = hf

    def forward(self, ids_or_batch: torch.Tensor | Mapping[str, torch.Tensor],
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(ids_or_batch, Mapping):
            return self.hf(**ids_or_batch).logits
        return self.hf(input_ids=ids_or_batch, attention_mask=attention_mask).logits


# ------------------------------------------------------------------------------------------
# models
# ------------------------------------------------------------------------------------------


def build(kind: str, small: bool, attn: str, batch: int, seq: int,
          same_sites: bool = False) -> tuple[nn.Module, Batch]:
    """``(model.eval(), enc)`` for kind "bert" or "gpt2"; ``small``: 2 layers of width 128."""
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        GPT2Config,
        GPT2ForSequenceClassification,
    )

    torch.manual_seed(0)
    shape = dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2,
                 intermediate_size=512, vocab_size=1000) if small else {}
    # same_sites: no attention-probability dropout, so every method samples the sites that
    # baal samples (baal leaves that dropout off, see the README's table) - like for like
    if kind == "bert":
        no_attn = {"attention_probs_dropout_prob": 0.0} if same_sites else {}
        model: nn.Module = BertForSequenceClassification(BertConfig(
            num_labels=2, attn_implementation=attn, **shape, **no_attn))
    else:
        gshape = {"n_layer": shape["num_hidden_layers"], "n_embd": shape["hidden_size"],
                  "n_head": shape["num_attention_heads"], "vocab_size": shape["vocab_size"]
                  } if small else {}
        model = GPT2ForSequenceClassification(GPT2Config(
            num_labels=2, pad_token_id=0, attn_implementation=attn, **gshape,
            **({"attn_pdrop": 0.0} if same_sites else {})))
    vocab = model.config.vocab_size
    ids = torch.randint(1, vocab, (batch, seq))
    mask = torch.ones(batch, seq, dtype=torch.long)
    ids[-1, seq // 2:], mask[-1, seq // 2:] = 0, 0  # the last sequence: half padding
    return model.eval(), {"input_ids": ids, "attention_mask": mask}


# ------------------------------------------------------------------------------------------
# methods: each is (run(S) -> (S, B, C) logits, the module whose dropout it fires)
# ------------------------------------------------------------------------------------------

Method = tuple[Callable[[int], torch.Tensor], nn.Module]


def dropkit_method(model: nn.Module, enc: Batch, call: str, seed: int | None) -> Method:
    if call == "keywords":
        return (lambda s: dropkit.sample(model, enc, s, seed=seed)), model  # type: ignore[arg-type]
    adapter = Logits(model)
    args = (enc["input_ids"], enc["attention_mask"])
    return (lambda s: dropkit.sample(adapter, args, s, seed=seed)), model  # type: ignore[return-value]


def naive_loop(model: nn.Module, enc: Batch) -> Method:
    def run(s: int) -> torch.Tensor:
        model.train()  # no BatchNorm in these models: train mode is exactly "dropout on"
        try:
            with torch.no_grad():
                return torch.stack([model(**enc).logits for _ in range(s)])
        finally:
            model.eval()

    return run, model


def baal_method(model: nn.Module, enc: Batch, replicate: bool) -> Method:
    from baal.bayesian.dropout import MCDropoutModule
    from baal.modelwrapper import ModelWrapper

    copy_ = copy.deepcopy(model)  # baal patches the dropout modules in place
    wrapped = MCDropoutModule(Logits(copy_)).eval()
    shim = SimpleNamespace(model=wrapped, args=SimpleNamespace(
        use_cuda=False, replicate_in_memory=replicate))

    def run(s: int) -> torch.Tensor:
        out = ModelWrapper.predict_on_batch(shim, enc, iterations=s)  # [B, C, S], baal's code
        return out.permute(2, 0, 1)

    return run, copy_


def make_methods(model: nn.Module, enc: Batch, call: str) -> tuple[dict[str, Method], list[str]]:
    methods = {"dropkit auto": dropkit_method(model, enc, call, None),
               "dropkit auto, seeded": dropkit_method(model, enc, call, 0),
               "naive loop": naive_loop(model, enc)}
    notes = []
    try:
        methods["baal loop"] = baal_method(model, enc, replicate=False)
        methods["baal replicate"] = baal_method(model, enc, replicate=True)
        notes.append(f"baal {version('baal')}")
    except ImportError as err:
        notes.append(f"baal not available ({err}): install it in a separate venv")
    return methods, notes


# ------------------------------------------------------------------------------------------
# measurement
# ------------------------------------------------------------------------------------------


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def sites_per_pass(run: Callable[[int], torch.Tensor], module: nn.Module) -> int:
    """Distinct dropout sites that fired, by the independent trace, over a 2-sample call."""
    with FiringTrace(module) as tr:
        run(2)
    return len(tr.firing())


def block_profile(model: nn.Module, enc: Batch, reps: int) -> list[tuple[str, float]]:
    """Median seconds per top-level block of one deterministic pass: the embeddings (the
    deterministic prefix, up to the embedding dropout), each transformer layer, the rest."""
    base = getattr(model, "bert", None) or model.transformer  # type: ignore[union-attr]
    layers = base.encoder.layer if hasattr(base, "encoder") else base.h
    blocks: list[tuple[str, list[nn.Module]]] = [
        ("embeddings", [base.embeddings] if hasattr(base, "embeddings") else [base.wte, base.wpe])]
    blocks += [(f"layer {i}", [layer]) for i, layer in enumerate(layers)]
    spent: dict[str, list[float]] = {name: [] for name, _ in blocks}
    spent["total"], spent["rest"], spent["cpu"] = [], [], []
    starts: dict[int, float] = {}
    handles = []
    for name, mods in blocks:
        for m in mods:
            def pre(mod: nn.Module, args: Any) -> None:
                starts[id(mod)] = time.perf_counter()

            def post(mod: nn.Module, args: Any, out: Any, name: str = name) -> None:
                acc[name] = acc.get(name, 0.0) + time.perf_counter() - starts[id(mod)]

            handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        for _ in range(reps):
            acc: dict[str, float] = {}
            cpu = time.process_time()
            with torch.no_grad():
                total = timed(lambda: model(**enc))
            spent["cpu"].append(time.process_time() - cpu)
            for name, _ in blocks:
                spent[name].append(acc.get(name, 0.0))
            spent["total"].append(total)
            spent["rest"].append(total - sum(acc.values()))
    finally:
        for h in handles:
            h.remove()
    return [(k, statistics.median(v)) for k, v in spent.items()]


def bench(kind: str, args: argparse.Namespace) -> None:
    model, enc = build(kind, args.small, args.attn, args.batch, args.seq, args.same_sites)
    s = args.samples
    methods, notes = ({}, ["profile only"]) if args.profile_only else make_methods(
        model, enc, args.call)
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"\n## {kind}: {n_params:.1f}M parameters, batch {args.batch} x {args.seq} tokens, "
          f"S = {s}, attention {args.attn}; {'; '.join(notes)}")
    if not args.profile_only:
        compare(model, enc, methods, args)
    profile(model, enc, args)


def compare(model: nn.Module, enc: Batch, methods: dict[str, Method],
            args: argparse.Namespace) -> None:
    s = args.samples

    def det() -> object:
        with torch.no_grad():
            return model(**enc)

    # warm-up (dropkit auto decides and remembers its strategy here), the firing trace and the
    # mean check against the naive loop
    outs, sites, failed = {}, {}, {}
    for name, (run, module) in list(methods.items()):
        try:
            outs[name] = run(s).float()
            # the trace adds and removes hooks (part of a model's fingerprint): dropkit keeps
            # the plans of recent states, so the timed calls below do not plan again (each
            # round's time is printed: a call that planned would stand out)
            sites[name] = sites_per_pass(run, module)
        except Exception as err:  # noqa: BLE001 - report the failure in the table
            failed[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:90]}"
            del methods[name]
    for p in plans(model):
        print(f"dropkit plan ({'seeded' if p.key[5] else 'unseeded'}): "
              f"{str(p).splitlines()[0][:400]}")
    ref = outs["naive loop"].softmax(-1)
    checks = {k: float(mean_z(v.softmax(-1), ref, floor=1e-4).max()) for k, v in outs.items()}
    del outs
    times: dict[str, list[float]] = {k: [] for k in [*methods, "det"]}
    names = list(methods)
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        times["det"].append(timed(det))
        for k in order:
            times[k].append(timed(lambda k=k: methods[k][0](s)))
    med = {k: statistics.median(v) for k, v in times.items()}
    peers = [k for k in names if not k.startswith("dropkit")]
    best = min(peers, key=med.__getitem__)
    print(f"\n(best peer: {best})\n\n| method | s/batch (all S) | rounds | x det pass | x naive "
          "loop | x best peer | sites fired per pass | mean z vs loop |\n"
          "|---|---|---|---|---|---|---|---|")
    print(f"| deterministic pass | {med['det']:.3f} | "
          f"{', '.join(f'{t:.2f}' for t in times['det'])} | 1.0 | - | - | 0 | - |")
    for k in names:
        print(f"| {k} | {med[k]:.3f} | {', '.join(f'{t:.1f}' for t in times[k])} | "
              f"{med[k] / med['det']:.1f} | {med[k] / med['naive loop']:.2f} | "
              f"{med[k] / med[best]:.2f} | {sites[k]} | {checks[k]:.1f} |")
    for k, msg in failed.items():
        print(f"| {k} | failed: {msg} | | | | | | |")


def profile(model: nn.Module, enc: Batch, args: argparse.Namespace) -> None:
    s = args.samples
    prof = dict(block_profile(model, enc, args.rounds))
    total, cpu = prof.pop("total"), prof.pop("cpu")
    print("\nper-block time of one deterministic pass (median of "
          f"{args.rounds}): " + ", ".join(f"{k} {v * 1e3:.1f} ms ({100 * v / total:.1f}%)"
                                          for k, v in prof.items())
          + f"; total {total * 1e3:.1f} ms wall, {cpu * 1e3:.1f} ms process CPU")
    prefix = prof["embeddings"]
    saved = (s - 1) * prefix / (s * total)
    print(f"cached strategy, best case: the deterministic prefix is the embeddings only (the "
          f"embedding dropout follows them, and every layer has dropout), "
          f"{100 * prefix / total:.2f}% of a pass; running it once instead of S = {s} times "
          f"saves {100 * saved:.2f}% of the loop's time (S x pass -> prefix + S x (pass - prefix))")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="smoke size: 2 layers of width 128")
    ap.add_argument("--models", default="bert,gpt2")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, help="default 8 (--small: 2)")
    ap.add_argument("--seq", type=int, help="default 128 (--small: 16)")
    ap.add_argument("--attn", choices=("sdpa", "eager"), default="sdpa")
    ap.add_argument("--call", choices=("adapter", "keywords"), default="adapter",
                    help="dropkit on a Logits adapter (works today) or on the HF model with "
                         "keyword inputs (issue 10)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--same-sites", action="store_true",
                    help="attention-probability dropout 0, so that every method (baal too) "
                         "samples the same dropout sites")
    ap.add_argument("--profile-only", action="store_true",
                    help="only the per-block profile and the cached-strategy estimate")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress in logs
    args.batch = args.batch or (2 if args.small else 8)
    args.seq = args.seq or (16 if args.small else 128)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    print(f"# hf_speed: {platform.processor() or platform.machine()}, {args.threads} threads, "
          f"torch {torch.__version__}, transformers {version('transformers')}, dropkit "
          f"{dropkit.__version__}, Python {platform.python_version()}, seed 0, "
          f"{args.rounds} interleaved rounds (medians)")
    for kind in args.models.split(","):
        bench(kind, args)
    print(f"\nwall time of this run: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
