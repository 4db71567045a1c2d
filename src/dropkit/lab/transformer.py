"""Claim 5: in a transformer, dropout belongs on the attention weights, the attention output and
the FFN intermediate, not on the embeddings or the residual stream.

A nanoGPT-style byte-level language model (pre-LayerNorm blocks) is trained on the standard
library's own source files (present on every Python install, no download) with dropout at one
site or a set of sites, in two regimes: little data seen for many epochs (overfitting possible)
and a larger stream seen once. Every configuration of a seed starts from the same weights and
sees the same batches, so per-seed differences of validation loss are paired.
"""

from __future__ import annotations

import math
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dropkit._validate import check_probability
from dropkit.errors import DropkitValueError, expected
from dropkit.lab.base import (
    ClaimExperiment,
    ClaimResult,
    Figure,
    Judged,
    LabConfig,
    Statement,
    figure_png,
    mean_se,
    run_experiment,
)
from dropkit.lab.base import judge as base_judge
from dropkit.lab.statements import disagreement, effect_statement, group_summary

CLAIM_ID = "transformer-placement"
TITLE = "Transformer dropout placement"
CLAIM = ("In a transformer, dropout belongs on the attention weights, the attention output and "
         "the FFN intermediate, but not on the embeddings, the residual stream or the layer "
         "norms.")

#: Every place the model can drop: ``emb`` the token+position embedding sum; ``attn`` the
#: attention weights (after softmax); ``attn_out`` the attention block's output projection
#: before it is added to the residual stream; ``ffn_mid`` the FFN intermediate (after GELU);
#: ``ffn_out`` the FFN output before the add; ``resid`` a mask on the residual stream itself,
#: after each add; ``ln`` the output of each LayerNorm (the input of every sub-block).
SITES = ("emb", "attn", "attn_out", "ffn_mid", "ffn_out", "resid", "ln")

#: The sites tried alone (``ln`` is tried only added to the recommended set).
SINGLE_SITES = ("emb", "attn", "attn_out", "ffn_mid", "ffn_out", "resid")

#: The sites the claim recommends.
RECOMMENDED = ("attn", "attn_out", "ffn_mid")

#: Named configurations: none, each site alone, and the usual combinations.
CONFIGS: dict[str, tuple[str, ...]] = {
    "none": (),
    **{s: (s,) for s in SINGLE_SITES},
    "recommended": RECOMMENDED,
    "recommended+emb": (*RECOMMENDED, "emb"),
    "recommended+resid": (*RECOMMENDED, "resid"),
    "recommended+ln": (*RECOMMENDED, "ln"),
    "gpt2": ("emb", "attn", "attn_out", "ffn_out"),
    "attn+ffn_mid": ("attn", "ffn_mid"),
}

#: The configurations a ``quick`` run trains: enough for every effect of the verdict.
QUICK_CONFIGS = ("none", "recommended", "recommended+emb", "recommended+resid",
                 "recommended+ln")

#: Standard-library modules that exist as single files on every CPython from 3.10 on; the
#: corpus is the ones found, in this order.
STDLIB_FILES = ("textwrap.py", "argparse.py", "typing.py", "inspect.py", "dataclasses.py",
                "enum.py", "functools.py", "subprocess.py", "difflib.py", "threading.py",
                "shutil.py", "calendar.py", "contextlib.py", "random.py", "statistics.py")

REGIMES = ("small-data", "single-pass")

#: Issue 14's statements of this claim: (id, effect in `_effects`, the statement).
STATEMENTS = (
    ("tf.sites", "recommended_helps", "Dropout belongs on the attention weights, the attention "
     "output and the FFN intermediate."),
    ("tf.residual", "residual_mask_hurts", "Dropout does not belong on the residual stream."),
    ("tf.layernorm", "layernorm_dropout_hurts", "Dropout does not belong on the layer norms."),
    ("tf.embeddings", "embedding_dropout_hurts", "Dropout does not belong on the embedding "
     "layer."),
)

#: Bytes 0..126 are themselves; every non-ASCII byte (rare in the stdlib) becomes 127.
VOCAB = 128


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class PlacementSettings:
    """Every parameter that changes the claim's numbers (the full run; `quick` shrinks it).

    ``small_chars`` training bytes (chunks of ``subset_chunk`` bytes spread over the corpus) are
    revisited for ``steps`` steps in the small-data regime (``steps * batch_size * context /
    small_chars`` epochs); in the single-pass regime every training window is new (``steps *
    batch_size * context`` bytes, each seen once). Seed ``s`` draws its batch order from
    ``order_seed_offset + s``; ``seeds_used`` keeps the first n of the lab's seeds (None: all).
    """

    n_layer: int = 2
    d_model: int = 32
    n_head: int = 2
    context: int = 32
    batch_size: int = 16
    steps: int = 100
    lr: float = 3e-3
    weight_decay: float = 0.0  # AdamW's
    max_grad_norm: float = 1.0  # per model
    p: float = 0.2
    small_chars: int = 2_560
    subset_chunk: int = 256
    val_chars: int = 4_096
    val_fraction: float = 0.1  # the last part of each file
    eval_batch: int = 64  # windows per evaluation chunk (the float sums depend on it)
    evals: int = 2
    configs: tuple[str, ...] = tuple(CONFIGS)
    files: tuple[str, ...] = STDLIB_FILES
    order_seed_offset: int = 10_000
    seeds_used: int | None = None
    min_effect: float = 0.01  # nats per byte
    smoke_test: bool = False  # set by `quick`: the caveats say the run is no evidence

    def quick(self) -> PlacementSettings:
        """A tiny model, few steps, the configurations the verdict needs, the first 2 seeds."""
        return replace(self, n_layer=1, d_model=16, n_head=2, context=16, batch_size=8,
                       steps=30, small_chars=2_048, val_chars=2_048, evals=2,
                       configs=QUICK_CONFIGS, seeds_used=2, smoke_test=True)


SETTINGS = PlacementSettings()


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Corpus:
    """Byte streams: ``train`` (1-D uint8 as int64) and ``val``, plus where they came from."""

    train: torch.Tensor
    val: torch.Tensor
    files: tuple[str, ...]


def load_corpus(files: Sequence[str] = STDLIB_FILES, *, val_fraction: float = 0.1,
                root: str | Path | None = None) -> Corpus:
    """Concatenate the standard-library ``files`` found under ``root`` (the stdlib by default)
    as UTF-8 bytes; the last ``val_fraction`` of each file is validation, the rest training.

    Splitting every file (rather than holding out whole files) keeps train and validation from
    the same mixture of coding styles.
    """
    base = Path(root) if root is not None else Path(sysconfig.get_paths()["stdlib"])
    train_parts: list[bytes] = []
    val_parts: list[bytes] = []
    found: list[str] = []
    for name in files:
        path = base / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        cut = int(len(data) * (1 - val_fraction))
        train_parts.append(data[:cut])
        val_parts.append(data[cut:])
        found.append(name)
    if not found:
        raise FileNotFoundError(f"none of the standard-library files {list(files)} is under {base}")

    def to_tensor(parts: list[bytes]) -> torch.Tensor:
        raw = torch.frombuffer(bytearray(b"".join(parts)), dtype=torch.uint8)
        return raw.long().clamp(max=VOCAB - 1)

    return Corpus(to_tensor(train_parts), to_tensor(val_parts), tuple(found))


def spread_subset(stream: torch.Tensor, n: int, chunk: int) -> torch.Tensor:
    """``n`` bytes of ``stream`` taken as evenly spaced chunks of ``chunk`` bytes.

    The small-data regime draws from every file rather than the first one.
    """
    n_chunks = max(1, n // chunk)
    total = len(stream) // chunk
    starts = torch.linspace(0, total - 1, n_chunks).long() * chunk
    return torch.cat([stream[s:s + chunk] for s in starts.tolist()])


def windows(stream: torch.Tensor, context: int) -> torch.Tensor:
    """Non-overlapping ``(N, context + 1)`` windows (input plus shifted target) of ``stream``."""
    n = (len(stream) - 1) // context
    idx = torch.arange(n)[:, None] * context + torch.arange(context + 1)[None, :]
    return stream[idx]


# ----------------------------------------------------------------------------- model


def _dropout(x: torch.Tensor, rows: torch.Tensor | None, p: float) -> torch.Tensor:
    """Inverted dropout with rate ``p`` on the models ``rows`` of ``x`` ``(K, ...)`` only.

    ``rows=None``: no model drops here. Masks are drawn for the dropping models alone, which
    keeps a stack of mostly non-dropping models cheap.
    """
    if rows is None:
        return x
    # torch.rand + where is about twice as fast as bernoulli_ on a CPU.
    keep = torch.where(torch.rand((len(rows), *x.shape[1:])) >= p, 1 / (1 - p), 0.0)
    mask = x.new_ones(x.shape)
    mask[rows] = keep
    return x * mask


class StackedGPT(nn.Module):
    """``K`` independent byte-level GPTs (pre-LayerNorm, nanoGPT-style) in one module.

    Every parameter has a leading ``K`` dimension, and model ``k`` drops at the sites
    ``sites[k]`` with probability ``p``; the models share no parameter, so summing their losses
    trains each one exactly as if it were alone, while one batched step costs far less than
    ``K`` small ones on a CPU. Inputs and logits are ``(K, B, T)`` and ``(K, B, T, vocab)``.
    """

    def __init__(self, init: dict[str, torch.Tensor], sites: Sequence[Sequence[str]], *,
                 n_head: int, p: float) -> None:
        super().__init__()
        unknown = sorted({x for s in sites for x in s} - set(SITES))
        if unknown:
            raise DropkitValueError(expected("sites", f"lists of sites from {list(SITES)}",
                                             f"unknown site(s) {unknown}"))
        check_probability("p", p)
        k = len(sites)
        self.n_head = n_head
        self.n_layer = sum(1 for name in init if name.endswith(".qkv.w"))
        # (1, ...) -> (K, ...): every model starts from the weights it is given.
        self.params = nn.ParameterDict({
            name.replace(".", "_"): nn.Parameter(w.unsqueeze(0).repeat(k, *[1] * w.dim()))
            if w.shape[0] != k else nn.Parameter(w.clone())
            for name, w in init.items()})
        self.p = p
        self.rows: dict[str, torch.Tensor | None] = {}
        for site in SITES:
            rows = torch.tensor([i for i, s in enumerate(sites) if site in s], dtype=torch.long)
            self.rows[site] = rows if (len(rows) and p > 0) else None

    def w(self, name: str) -> torch.Tensor:
        return self.params[name.replace(".", "_")]

    def _layer_norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        x = F.layer_norm(x, x.shape[-1:])
        return x * self.w(name + ".g")[:, None, None] + self.w(name + ".b")[:, None, None]

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        k, b, t, _ = x.shape
        # (K, B*T, in) @ (K, in, out) + (K, 1, out) -> (K, B, T, out)
        y = torch.baddbmm(self.w(name + ".b")[:, None], x.reshape(k, b * t, -1),
                          self.w(name + ".w"))
        return y.view(k, b, t, -1)

    def _site(self, x: torch.Tensor, site: str) -> torch.Tensor:
        return _dropout(x, self.rows[site], self.p) if self.training else x

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        k, b, t = idx.shape
        tok = self.w("tok")  # (K, vocab, C)
        # Model k's rows of the flattened (K*vocab, C) table start at k*vocab.
        offset = (torch.arange(k) * tok.shape[1]).view(k, 1, 1)
        x = F.embedding(idx + offset, tok.flatten(0, 1)) + self.w("pos")[:, None, :t]  # (K,B,T,C)
        x = self._site(x, "emb")
        c = x.shape[-1]
        hs = c // self.n_head
        causal = torch.ones(t, t, dtype=torch.bool).triu(1)
        for i in range(self.n_layer):
            h = self._site(self._layer_norm(x, f"h{i}.ln1"), "ln")
            # (K, B, T, 3C) -> 3 x (K, B, nh, T, hs)
            q, kk, v = (z.reshape(k, b, t, self.n_head, hs).transpose(2, 3)
                        for z in self._linear(h, f"h{i}.qkv").split(c, dim=-1))
            att = (q @ kk.transpose(-2, -1)) * hs ** -0.5  # (K, B, nh, T, T)
            att = self._site(att.masked_fill(causal, float("-inf")).softmax(-1), "attn")
            y = (att @ v).transpose(2, 3).reshape(k, b, t, c)
            x = self._site(x + self._site(self._linear(y, f"h{i}.proj"), "attn_out"), "resid")
            h = self._site(self._layer_norm(x, f"h{i}.ln2"), "ln")
            h = self._site(F.gelu(self._linear(h, f"h{i}.fc")), "ffn_mid")
            x = self._site(x + self._site(self._linear(h, f"h{i}.fc_out"), "ffn_out"), "resid")
        x = self._layer_norm(x, "ln_f")
        return x @ self.w("head").transpose(-2, -1).unsqueeze(1)  # (K, B, T, vocab)

    def clip_grad_norm_(self, max_norm: float) -> None:
        """Clip each model's gradient norm separately (``clip_grad_norm_`` would mix them)."""
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        sq = torch.stack([g.pow(2).flatten(1).sum(1) for g in grads]).sum(0)  # (K,)
        scale = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))


def init_weights(*, n_layer: int, d_model: int, context: int, vocab: int = VOCAB,
                 seed: int) -> dict[str, torch.Tensor]:
    """GPT-2 initialisation of one model (weights N(0, 0.02), residual projections scaled by
    1/sqrt(2 n_layer), biases 0, LayerNorm gains 1), reproducible from ``seed``."""
    gen = torch.Generator().manual_seed(seed)

    def normal(*shape: int, std: float = 0.02) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * std

    d = d_model
    out: dict[str, torch.Tensor] = {"tok": normal(vocab, d), "pos": normal(context, d)}
    resid_std = 0.02 / math.sqrt(2 * n_layer)
    for i in range(n_layer):
        out |= {f"h{i}.ln1.g": torch.ones(d), f"h{i}.ln1.b": torch.zeros(d),
                f"h{i}.qkv.w": normal(d, 3 * d), f"h{i}.qkv.b": torch.zeros(3 * d),
                f"h{i}.proj.w": normal(d, d, std=resid_std), f"h{i}.proj.b": torch.zeros(d),
                f"h{i}.ln2.g": torch.ones(d), f"h{i}.ln2.b": torch.zeros(d),
                f"h{i}.fc.w": normal(d, 4 * d), f"h{i}.fc.b": torch.zeros(4 * d),
                f"h{i}.fc_out.w": normal(4 * d, d, std=resid_std),
                f"h{i}.fc_out.b": torch.zeros(d)}
    out |= {"ln_f.g": torch.ones(d), "ln_f.b": torch.zeros(d), "head": normal(vocab, d)}
    return out


# ----------------------------------------------------------------------------- training


def _losses(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per model ``(K,)`` of ``(K, B, T + 1)`` windows."""
    logits = model(batch[..., :-1])
    ce = F.cross_entropy(logits.flatten(0, 2), batch[..., 1:].flatten(), reduction="none")
    return ce.view(batch.shape[0], -1).mean(1)


@torch.no_grad()
def evaluate(model: StackedGPT, val: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Validation cross-entropy per model ``(K,)`` in nats per byte, dropout off; ``val`` is
    ``(N, T + 1)`` windows shared by all models. The train/eval flag is restored."""
    was_training = model.training
    model.eval()
    k = next(iter(model.params.values())).shape[0]
    try:
        total = torch.zeros(k, dtype=torch.float64)
        for i in range(0, len(val), batch_size):
            chunk = val[i:i + batch_size]
            total += _losses(model, chunk.expand(k, *chunk.shape)).double() * len(chunk)
    finally:
        model.train(was_training)
    return total / len(val)


def _batch_orders(n_windows: int, seeds: Sequence[int], ps: PlacementSettings, *,
                  single_pass: bool) -> torch.Tensor:
    """``(S, steps * B)`` window indices: seed ``s``'s from its own generator
    (``order_seed_offset + s``), a prefix of one permutation (single pass) or of as many
    permutations as the steps need (small data)."""
    needed = ps.steps * ps.batch_size
    orders = []
    for s in seeds:
        gen = torch.Generator().manual_seed(ps.order_seed_offset + s)
        if single_pass:
            if n_windows < needed:
                raise ValueError(f"a single pass needs {needed} windows, the corpus has "
                                 f"{n_windows}")
            orders.append(torch.randperm(n_windows, generator=gen)[:needed])
        else:
            reps = math.ceil(needed / n_windows)
            orders.append(torch.cat([torch.randperm(n_windows, generator=gen)
                                     for _ in range(reps)])[:needed])
    return torch.stack(orders)


def train_stack(train_windows: torch.Tensor, val_windows: torch.Tensor,
                configs: Sequence[str], seeds: Sequence[int], ps: PlacementSettings, *,
                single_pass: bool) -> dict[str, Any]:
    """Train one model per (seed, configuration) on ``(N, T + 1)`` windows, all at once.

    Seed ``s`` fixes the initial weights and the batch order of all its configurations (so
    they differ only by where they drop) and, with the others, the dropout masks. Returns
    ``val`` and ``best_val`` ``(seeds, configs)`` lists, ``train`` (last training loss) and the
    validation ``curve`` ``[(step, (seeds, configs) list)]``.
    """
    n_cfg = len(configs)
    orders = _batch_orders(len(train_windows), seeds, ps, single_pass=single_pass)
    # (S, steps*B) -> (S*configs, steps, B): model k = seed k // n_cfg, config k % n_cfg
    order = orders.repeat_interleave(n_cfg, 0).view(-1, ps.steps, ps.batch_size)
    inits = [init_weights(n_layer=ps.n_layer, d_model=ps.d_model, context=ps.context,
                          seed=s) for s in seeds]
    init = {name: torch.stack([w[name] for w in inits]).repeat_interleave(n_cfg, 0)
            for name in inits[0]}
    sites = [CONFIGS[c] for _ in seeds for c in configs]
    with torch.random.fork_rng(devices=[]):
        # one mask stream for the whole stack: every seed's masks depend on all the seeds
        torch.manual_seed(hash_seeds(seeds))
        model = StackedGPT(init, sites, n_head=ps.n_head, p=ps.p)
        opt = torch.optim.AdamW(model.parameters(), lr=ps.lr, weight_decay=ps.weight_decay)
        eval_at = {round(ps.steps * (i + 1) / ps.evals) for i in range(ps.evals)}
        curve: list[tuple[int, list[list[float]]]] = []
        train_loss = torch.full((len(sites),), float("nan"))
        model.train()
        for step in range(ps.steps):
            losses = _losses(model, train_windows[order[:, step]])  # batch (K, B, T + 1)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            model.clip_grad_norm_(ps.max_grad_norm)
            opt.step()
            train_loss = losses.detach()
            if step + 1 in eval_at:
                val = evaluate(model, val_windows, ps.eval_batch)
                curve.append((step + 1, val.view(len(seeds), n_cfg).tolist()))
    vals = torch.tensor([c for _, c in curve])  # (evals, S, configs)
    return {"val": vals[-1].tolist(), "best_val": vals.min(0).values.tolist(),
            "train": train_loss.view(len(seeds), n_cfg).tolist(), "curve": curve}


def hash_seeds(seeds: Sequence[int]) -> int:
    """One seed for the dropout masks of a stack, from its seed list."""
    h = 0
    for s in seeds:
        h = (h * 1_000_003 + int(s)) % (2**62)
    return h


# ----------------------------------------------------------------------------- measure


def _regime_windows(ps: PlacementSettings, corpus: Corpus) -> dict[str, tuple[torch.Tensor,
                                                                              bool]]:
    """Each regime's training windows and whether they are seen once."""
    small = windows(spread_subset(corpus.train, ps.small_chars, ps.subset_chunk), ps.context)
    return {"small-data": (small, False),
            "single-pass": (windows(corpus.train, ps.context), True)}


def shared(ps: PlacementSettings, seeds: tuple[int, ...]) -> dict[str, Any]:
    """All the training: one stack of every (seed, configuration) per regime.

    A stack draws the dropout masks of all its models from one stream seeded by
    `hash_seeds` of all the seeds, so one seed's models cannot be trained alone without
    changing their numbers: the claim's measurements are made once, here, not per seed.
    """
    used = list(seeds[:ps.seeds_used] if ps.seeds_used is not None else seeds)
    corpus = load_corpus(ps.files, val_fraction=ps.val_fraction)
    val = windows(corpus.val, ps.context)[: ps.val_chars // ps.context]
    regimes = {}
    for regime, (train_w, single) in _regime_windows(ps, corpus).items():
        raw = train_stack(train_w, val, list(ps.configs), used, ps, single_pass=single)
        regimes[regime] = {"train_bytes": len(train_w) * ps.context, **raw}
    return {"seeds": used, "files": list(corpus.files), "regimes": regimes}


def measure(ps: PlacementSettings, seed: int) -> dict[str, Any]:
    """Nothing of its own: a seed's models train in the stack of all seeds (see `shared`)."""
    return {"seed": seed}


# ----------------------------------------------------------------------------- judge


def _effects(per_config: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """The paired effects of the verdict, each positive when it favours the claim, with their
    mean and standard error over seeds."""
    def diff(a: str, b: str) -> list[float]:
        return [x - y for x, y in zip(per_config[a], per_config[b], strict=True)]

    effects: dict[str, dict[str, Any]] = {
        "recommended_helps": {
            "what": "val loss(none) - val loss(recommended sites)",
            "effects": diff("none", "recommended")},
        "embedding_dropout_hurts": {
            "what": "val loss(recommended + embeddings) - val loss(recommended)",
            "effects": diff("recommended+emb", "recommended")},
        "residual_mask_hurts": {
            "what": "val loss(recommended + residual-stream mask) - val loss(recommended)",
            "effects": diff("recommended+resid", "recommended")},
        "layernorm_dropout_hurts": {
            "what": "val loss(recommended + LayerNorm outputs) - val loss(recommended)",
            "effects": diff("recommended+ln", "recommended")},
    }
    for e in effects.values():
        e["mean"], e["se"] = mean_se(e["effects"])
    return effects


def _config_stats(raw: dict[str, Any], configs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per configuration: its per-seed final validation losses, their mean and se, the best
    and last-training losses, and its validation curve."""
    stats = {}
    for j, c in enumerate(configs):
        vals = [row[j] for row in raw["val"]]
        m, se = mean_se(vals)
        bm, bse = mean_se([row[j] for row in raw["best_val"]])
        tm, _ = mean_se([row[j] for row in raw["train"]])
        stats[c] = {"sites": list(CONFIGS[c]), "val_loss": vals,
                    "val_loss_mean": m, "val_loss_se": se, "best_val_loss_mean": bm,
                    "best_val_loss_se": bse, "last_train_loss_mean": tm,
                    "curve": [[step, [row[j] for row in v]] for step, v in raw["curve"]]}
    return stats


def regime_numbers(ps: PlacementSettings, shared: dict[str, Any]) -> dict[str, Any]:
    """``numbers["regimes"]``: each regime's description, size, statistics and effects."""
    configs = list(ps.configs)
    tokens = ps.steps * ps.batch_size * ps.context
    out = {}
    for regime in REGIMES:
        raw = shared["regimes"][regime]
        n_train = raw["train_bytes"]
        desc = (f"{n_train:,} training bytes, {tokens / n_train:.0f} epochs"
                if regime == "small-data" else f"{tokens:,} training bytes, each seen once")
        stats = _config_stats(raw, configs)
        effects = _effects({c: stats[c]["val_loss"] for c in configs})
        out[regime] = {"description": desc, "train_bytes": n_train, "configs": stats,
                       "effects": effects}
    return out


def _statements(ps: PlacementSettings, effects: dict[str, dict[str, Any]]) -> list[Statement]:
    """Issue 14's statements, each judged by the shared effect rule on its small-data effect."""
    return [effect_statement(sid, CLAIM_ID, text, effects[key]["effects"],
                             min_effect=ps.min_effect, unit="nats/byte",
                             what=("small-data regime, final validation loss, paired by seed "
                                   "(same initial weights and batches): "
                                   + effects[key]["what"]))
            for sid, key, text in STATEMENTS]


def _key_number(ps: PlacementSettings, regimes: dict[str, Any], split: str) -> str:
    sm = regimes["small-data"]["configs"]
    effects = regimes["small-data"]["effects"]
    best = min(ps.configs, key=lambda c: sm[c]["val_loss_mean"])
    return (f"small data: none {sm['none']['val_loss_mean']:.3f} vs recommended "
            f"{sm['recommended']['val_loss_mean']:.3f} nats/byte; "
            f"+resid {effects['residual_mask_hurts']['mean']:+.3f}, "
            f"+emb {effects['embedding_dropout_hurts']['mean']:+.3f}; best: {best}"
            + (f". {split}" if split else ""))


def _setup(ps: PlacementSettings, regimes: dict[str, Any], files: Sequence[str]) -> str:
    return (f"A nanoGPT-style pre-LayerNorm byte-level language model ({ps.n_layer} layers, "
            f"d = {ps.d_model}, {ps.n_head} heads, context {ps.context}) trained with AdamW "
            f"(lr {ps.lr}, batch {ps.batch_size}, {ps.steps} steps) on standard-library "
            f"source ({', '.join(files)}; last {ps.val_fraction:.0%} of each file is "
            f"validation). Dropout p = {ps.p} at each site alone and in combinations, vs none; "
            f"small-data regime: {regimes['small-data']['description']}; single-pass "
            f"regime: {regimes['single-pass']['description']}.")


def _caveats(ps: PlacementSettings, seeds: Sequence[int]) -> list[str]:
    caveats = [
        f"A {ps.n_layer}-layer, d={ps.d_model} byte-level model trained for {ps.steps} steps "
        "on Python source; findings at GPT scale may differ.",
        f"One dropout rate (p = {ps.p}) for every site; the best rate differs by site "
        "(residual-stream masks are usually used with far smaller p).",
        "Final validation loss at a fixed step budget, no early stopping; the best loss over "
        f"{ps.evals} evaluations is in the numbers.",
        "The corpus is whichever of the listed standard-library files this Python has, so "
        "numbers differ slightly between Python versions.",
    ]
    if ps.smoke_test:
        caveats.insert(0, "Quick run: a tiny model, few steps, only the configurations the "
                       f"verdict needs and only seeds {list(seeds)}; not meant as evidence.")
    return caveats


def judge(ps: PlacementSettings, per_seed: list[dict[str, Any]],
          shared: dict[str, Any]) -> Judged:
    """The statements from the small-data regime's paired effects (regularization can matter
    there at all; the single-pass numbers are reported alongside, claim 7 is about that
    regime). ``per_seed`` holds nothing: everything was measured in `shared`."""
    regimes = regime_numbers(ps, shared)
    effects = regimes["small-data"]["effects"]
    sub = {k: base_judge(e["effects"], min_effect=ps.min_effect, what=e["what"]).verdict
           for k, e in effects.items()}
    judged = _statements(ps, effects)
    _, criterion = group_summary(judged)
    numbers = {"regimes": regimes, "sub_verdicts": sub, "seeds_used": shared["seeds"],
               "corpus_files": shared["files"]}
    return Judged(statements=judged, criterion=criterion,
                  key_number=_key_number(ps, regimes, disagreement(judged)), numbers=numbers,
                  setup=_setup(ps, regimes, shared["files"]),
                  caveats=_caveats(ps, shared["seeds"]), seeds=list(shared["seeds"]))


# ----------------------------------------------------------------------------- figures


def figures(ps: PlacementSettings, per_seed: list[dict[str, Any]],
            shared: dict[str, Any]) -> list[Figure]:
    """Validation loss per configuration in both regimes."""
    return [_plot(regime_numbers(ps, shared), list(ps.configs), ps)]


def _plot(regimes: dict[str, Any], configs: Sequence[str], ps: PlacementSettings) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, len(REGIMES), figsize=(6.2 * len(REGIMES),
                                                       0.33 * len(configs) + 1.8), sharey=True)
    for ax, regime in zip(axes, REGIMES, strict=True):
        stats = regimes[regime]["configs"]
        for row, c in enumerate(configs):
            sites = set(CONFIGS[c])
            color = ("#666666" if not sites else "#2b7bba" if sites <= set(RECOMMENDED)
                     else "#d95f02")
            ax.errorbar(stats[c]["val_loss_mean"], row, xerr=2 * stats[c]["val_loss_se"],
                        fmt="o", color=color, capsize=3)
        ax.axvline(stats["none"]["val_loss_mean"], color="k", lw=0.8, ls="--")
        ax.set_yticks(list(range(len(configs))))
        ax.set_yticklabels(configs)
        ax.set_xlabel("validation loss (nats per byte)")
        ax.set_title(f"{regime}: {regimes[regime]['description']}", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()  # shared y axis: invert once
    handles = [Line2D([], [], color=c, marker="o", ls="", label=lab) for c, lab in
               (("#666666", "no dropout"), ("#2b7bba", "only recommended sites"),
                ("#d95f02", "includes another site"))]
    handles.append(Line2D([], [], color="k", ls="--", lw=0.8, label="no-dropout level"))
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8,
               bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(f"Dropout site vs validation loss (p = {ps.p}, {ps.n_layer}-layer byte GPT, "
                 f"d = {ps.d_model})", y=1.03)
    return Figure("transformer-placement",
                  figure_png(fig),
                  "Final validation loss per dropout configuration (lower is better): mean over "
                  "seeds ± 2 standard errors. The verdict uses differences paired by seed, "
                  "which vary less than these unpaired bars.")


EXPERIMENT = ClaimExperiment(
    id=CLAIM_ID, title=TITLE, claim=CLAIM, settings=SETTINGS, measure=measure, judge=judge,
    figures=figures, shared=shared)


def run(cfg: LabConfig) -> ClaimResult:
    """Run the claim here, serially (`dropkit.lab.base.run_experiment`)."""
    return run_experiment(EXPERIMENT, cfg)
