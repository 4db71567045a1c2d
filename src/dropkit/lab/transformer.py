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
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dropkit.lab.base import ClaimResult, Figure, LabConfig, figure_png, judge, mean_se

CLAIM_ID = "transformer-placement"

#: Every place the model can drop: ``emb`` the token+position embedding sum; ``attn`` the
#: attention weights (after softmax); ``attn_out`` the attention block's output projection
#: before it is added to the residual stream; ``ffn_mid`` the FFN intermediate (after GELU);
#: ``ffn_out`` the FFN output before the add; ``resid`` a mask on the residual stream itself,
#: after each add; ``ln`` the output of each LayerNorm (the input of every sub-block).
SITES = ("emb", "attn", "attn_out", "ffn_mid", "ffn_out", "resid", "ln")

#: The sites the claim recommends.
RECOMMENDED = ("attn", "attn_out", "ffn_mid")

#: Named configurations: none, each site alone, and the usual combinations.
CONFIGS: dict[str, tuple[str, ...]] = {
    "none": (),
    **{s: (s,) for s in SITES},
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


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class PlacementConfig:
    """Sizes of the experiment (the full run; `quick_config` shrinks them).

    ``small_chars`` training bytes are revisited for ``steps`` steps in the small-data regime
    (``steps * batch_size * context / small_chars`` epochs); in the single-pass regime every
    training window is new (``steps * batch_size * context`` bytes, each seen once).
    """

    n_layer: int = 2
    d_model: int = 64
    n_head: int = 4
    context: int = 64
    batch_size: int = 32
    steps: int = 300
    lr: float = 3e-3
    p: float = 0.2
    small_chars: int = 16_384
    val_chars: int = 32_768
    evals: int = 4
    configs: tuple[str, ...] = tuple(CONFIGS)
    min_effect: float = 0.01  # nats per byte


def quick_config() -> PlacementConfig:
    return PlacementConfig(n_layer=1, d_model=32, context=32, batch_size=16, steps=40,
                           small_chars=4_096, val_chars=4_096, evals=2, configs=QUICK_CONFIGS)


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
        return torch.frombuffer(bytearray(b"".join(parts)), dtype=torch.uint8).long()

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


class Block(nn.Module):
    """A pre-LayerNorm transformer block with a dropout at every site of `SITES`."""

    def __init__(self, d: int, n_head: int, p: dict[str, float]) -> None:
        super().__init__()
        self.n_head = n_head
        self.p_attn = p["attn"]
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.fc_out = nn.Linear(4 * d, d)
        self.drop_ln = nn.Dropout(p["ln"])
        self.drop_attn_out = nn.Dropout(p["attn_out"])
        self.drop_ffn_mid = nn.Dropout(p["ffn_mid"])
        self.drop_ffn_out = nn.Dropout(p["ffn_out"])
        self.drop_resid = nn.Dropout(p["resid"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.drop_ln(self.ln1(x))).split(c, dim=2)
        # (B, T, C) -> (B, nh, T, hs)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        # Dropout on the attention weights (after softmax), as in nanoGPT.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.p_attn if self.training else 0.0)
        y = y.transpose(1, 2).reshape(b, t, c)
        x = self.drop_resid(x + self.drop_attn_out(self.proj(y)))
        h = self.drop_ffn_mid(F.gelu(self.fc(self.drop_ln(self.ln2(x)))))
        return self.drop_resid(x + self.drop_ffn_out(self.fc_out(h)))


class TinyGPT(nn.Module):
    """A byte-level GPT: embeddings, ``n_layer`` blocks, final LayerNorm, linear head."""

    def __init__(self, *, n_layer: int, d_model: int, n_head: int, context: int,
                 sites: Sequence[str] = (), p: float = 0.0, vocab: int = 256) -> None:
        super().__init__()
        unknown = set(sites) - set(SITES)
        if unknown:
            raise ValueError(f"unknown dropout sites {sorted(unknown)}; valid: {list(SITES)}")
        rates = {s: (p if s in sites else 0.0) for s in SITES}
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(context, d_model)
        self.drop_emb = nn.Dropout(rates["emb"])
        self.blocks = nn.ModuleList(Block(d_model, n_head, rates) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, vocab)`` for byte indices ``(B, T)``."""
        t = idx.shape[1]
        x = self.drop_emb(self.tok(idx) + self.pos(torch.arange(t)))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


# ----------------------------------------------------------------------------- training


def _loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    logits = model(batch[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))


@torch.no_grad()
def evaluate(model: nn.Module, val: torch.Tensor, batch_size: int = 256) -> float:
    """Mean cross-entropy (nats per byte) over the validation windows, dropout off.

    The model is left in the train/eval state it had.
    """
    was_training = model.training
    model.eval()
    try:
        total, count = 0.0, 0
        for i in range(0, len(val), batch_size):
            chunk = val[i:i + batch_size]
            total += _loss(model, chunk).item() * chunk.numel()
            count += chunk.numel()
    finally:
        model.train(was_training)
    return total / count


def train_one(train_windows: torch.Tensor, val_windows: torch.Tensor, sites: Sequence[str],
              pc: PlacementConfig, *, seed: int, single_pass: bool) -> dict[str, Any]:
    """Train one model; return its final and best validation loss and the training loss.

    ``seed`` fixes the initial weights, the batch order and the dropout masks; the weights and
    batches do not depend on ``sites``, so configurations are compared on equal terms.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyGPT(n_layer=pc.n_layer, d_model=pc.d_model, n_head=pc.n_head,
                        context=pc.context, sites=sites, p=pc.p)
        data_gen = torch.Generator().manual_seed(10_000 + seed)
        n_needed = pc.steps * pc.batch_size
        if single_pass:
            if len(train_windows) < n_needed:
                raise ValueError(f"single pass needs {n_needed} windows, the corpus has "
                                 f"{len(train_windows)}")
            order = torch.randperm(len(train_windows), generator=data_gen)[:n_needed]
        else:
            reps = math.ceil(n_needed / len(train_windows))
            order = torch.cat([torch.randperm(len(train_windows), generator=data_gen)
                               for _ in range(reps)])[:n_needed]
        opt = torch.optim.AdamW(model.parameters(), lr=pc.lr, weight_decay=0.0)
        eval_at = {round(pc.steps * (i + 1) / pc.evals) for i in range(pc.evals)}
        curve: list[tuple[int, float]] = []
        train_loss = float("nan")
        model.train()
        for step in range(1, pc.steps + 1):
            batch = train_windows[order[(step - 1) * pc.batch_size:step * pc.batch_size]]
            loss = _loss(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            train_loss = loss.item()
            if step in eval_at:
                curve.append((step, evaluate(model, val_windows)))
    return {"val_loss": curve[-1][1], "best_val_loss": min(v for _, v in curve),
            "last_train_loss": train_loss, "curve": curve}


# ----------------------------------------------------------------------------- the claim


def _effects(per_config: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """The three paired effects of the verdict, each positive when it favours the claim."""
    def diff(a: str, b: str) -> list[float]:
        return [x - y for x, y in zip(per_config[a], per_config[b], strict=True)]

    return {
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


def _combine(verdicts: Sequence[str]) -> str:
    if all(v == "supported" for v in verdicts):
        return "supported"
    if all(v == "not supported" for v in verdicts):
        return "not supported"
    return "partly supported"


def _plot(numbers: dict[str, Any], configs: Sequence[str], pc: PlacementConfig) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(REGIMES), figsize=(6.2 * len(REGIMES), 0.36 * len(configs)
                                                          + 1.6), sharey=True)
    for ax, regime in zip(axes, REGIMES, strict=True):
        stats = numbers["regimes"][regime]["configs"]
        means = [stats[c]["val_loss_mean"] for c in configs]
        ses = [stats[c]["val_loss_se"] for c in configs]
        colors = ["#888888" if c == "none" else "#2b7bba" if c.startswith("recommended")
                  or c in RECOMMENDED else "#d95f02" for c in configs]
        y = range(len(configs))
        ax.barh(list(y), means, xerr=[2 * s for s in ses], color=colors, capsize=3)
        ax.axvline(stats["none"]["val_loss_mean"], color="k", lw=0.8, ls="--", label="no dropout")
        lo = min(m - 2 * s for m, s in zip(means, ses, strict=True))
        hi = max(m + 2 * s for m, s in zip(means, ses, strict=True))
        pad = 0.15 * (hi - lo) + 1e-3
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_yticks(list(y))
        ax.set_yticklabels(configs)
        ax.invert_yaxis()
        ax.set_xlabel("validation loss (nats per byte), mean ± 2 se over seeds")
        ax.set_title(f"{regime}: {numbers['regimes'][regime]['description']}", fontsize=9)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"Dropout site vs validation loss (p = {pc.p}, {pc.n_layer}-layer byte GPT, "
                 f"d = {pc.d_model})")
    return Figure("transformer-placement",
                  figure_png(fig),
                  "Final validation loss per dropout configuration (lower is better); bars are "
                  "means over seeds, whiskers ± 2 standard errors. Grey: no dropout; blue: the "
                  "recommended sites; orange: others.")


def run(cfg: LabConfig) -> ClaimResult:
    """Measure validation loss per dropout site and regime; judge the placement claim."""
    start = time.perf_counter()
    pc = quick_config() if cfg.quick else PlacementConfig()
    seeds = list(cfg.seeds[:2]) if cfg.quick else list(cfg.seeds)
    corpus = load_corpus()
    val = windows(corpus.val, pc.context)[: pc.val_chars // pc.context]
    small = windows(spread_subset(corpus.train, pc.small_chars, 1024), pc.context)
    stream = windows(corpus.train, pc.context)
    regimes = {"small-data": (small, False), "single-pass": (stream, True)}
    configs = list(pc.configs)

    from tqdm.auto import tqdm

    raw: dict[str, dict[str, list[dict[str, Any]]]] = {r: {c: [] for c in configs} for r in REGIMES}
    total = len(REGIMES) * len(configs) * len(seeds)
    with tqdm(total=total, desc=CLAIM_ID, disable=not cfg.progress, leave=False) as bar:
        for regime, (train_w, single) in regimes.items():
            for seed in seeds:
                for name in configs:
                    raw[regime][name].append(
                        train_one(train_w, val, CONFIGS[name], pc, seed=seed, single_pass=single))
                    bar.update(1)

    tokens = pc.steps * pc.batch_size * pc.context
    numbers: dict[str, Any] = {"regimes": {}}
    for regime, (train_w, _) in regimes.items():
        n_train = len(train_w) * pc.context
        desc = (f"{n_train:,} training bytes, {tokens / n_train:.1f} epochs"
                if regime == "small-data" else f"{tokens:,} training bytes, each seen once")
        per_config = {c: [r["val_loss"] for r in raw[regime][c]] for c in configs}
        stats = {}
        for c in configs:
            m, se = mean_se(per_config[c])
            bm, bse = mean_se([r["best_val_loss"] for r in raw[regime][c]])
            tm, _ = mean_se([r["last_train_loss"] for r in raw[regime][c]])
            stats[c] = {"sites": list(CONFIGS[c]), "val_loss": per_config[c],
                        "val_loss_mean": m, "val_loss_se": se, "best_val_loss_mean": bm,
                        "best_val_loss_se": bse, "last_train_loss_mean": tm,
                        "curves": [r["curve"] for r in raw[regime][c]]}
        effects = _effects(per_config)
        for e in effects.values():
            e["mean"], e["se"] = mean_se(e["effects"])
        numbers["regimes"][regime] = {"description": desc, "train_bytes": n_train,
                                      "configs": stats, "effects": effects}

    # The verdict is taken in the small-data regime, where regularization can matter at all;
    # the single-pass numbers are reported alongside (claim 7 is about that regime).
    verdict_effects = numbers["regimes"]["small-data"]["effects"]
    judgements = {k: judge(e["effects"], min_effect=pc.min_effect, what=e["what"])
                  for k, e in verdict_effects.items()}
    verdict = _combine([j.verdict for j in judgements.values()])
    numbers["sub_verdicts"] = {k: j.verdict for k, j in judgements.items()}
    criterion = ("Small-data regime, final validation loss, effects paired by seed (same "
                 "initial weights and batches). Four sub-claims, each judged by the shared rule: "
                 + " | ".join(f"[{k}: {j.verdict}] {j.criterion}" for k, j in judgements.items())
                 + ". Overall: supported if all four are supported, not supported if none is "
                 "better than 'not supported', else partly supported.")
    sm = numbers["regimes"]["small-data"]["configs"]
    best = min(configs, key=lambda c: sm[c]["val_loss_mean"])
    key_number = (f"small data: none {sm['none']['val_loss_mean']:.3f} vs recommended "
                  f"{sm['recommended']['val_loss_mean']:.3f} nats/byte; "
                  f"+resid {verdict_effects['residual_mask_hurts']['mean']:+.3f}, "
                  f"+emb {verdict_effects['embedding_dropout_hurts']['mean']:+.3f}; best: {best}")
    figures = [_plot(numbers, configs, pc)]
    caveats = [
        f"A {pc.n_layer}-layer, d={pc.d_model} byte-level model trained for {pc.steps} steps "
        "on Python source; findings at GPT scale may differ.",
        f"One dropout rate (p = {pc.p}) for every site; the best rate differs by site "
        "(residual-stream masks are usually used with far smaller p).",
        "Final validation loss at a fixed step budget, no early stopping; the best loss over "
        f"{pc.evals} evaluations is in the numbers.",
        "The corpus is whichever of the listed standard-library files this Python has, so "
        "numbers differ slightly between Python versions.",
    ]
    if cfg.quick:
        caveats.insert(0, "Quick run: a tiny model, few steps and only the configurations the "
                       "verdict needs; not meant as evidence.")
    return ClaimResult(
        id=CLAIM_ID,
        title="Transformer dropout placement",
        claim="In a transformer, dropout belongs on the attention weights, the attention output "
              "and the FFN intermediate, but not on the embeddings, the residual stream or the "
              "layer norms.",
        setup=(f"A nanoGPT-style pre-LayerNorm byte-level language model ({pc.n_layer} layers, "
               f"d = {pc.d_model}, {pc.n_head} heads, context {pc.context}) trained with AdamW "
               f"(lr {pc.lr}, batch {pc.batch_size}, {pc.steps} steps) on standard-library "
               f"source ({', '.join(corpus.files)}; last 10% of each file is validation). "
               f"Dropout p = {pc.p} at each site alone and in combinations, vs none; small-data "
               f"regime: {numbers['regimes']['small-data']['description']}; single-pass "
               f"regime: {numbers['regimes']['single-pass']['description']}."),
        verdict=verdict,
        criterion=criterion,
        key_number=key_number,
        numbers=numbers,
        figures=figures,
        caveats=caveats,
        config={**asdict(pc), "files": list(corpus.files)},
        seeds=seeds,
        seconds=time.perf_counter() - start,
    )
