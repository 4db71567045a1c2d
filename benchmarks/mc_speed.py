"""MC dropout speed, side by side: dropkit vs a naive loop vs baal vs torch-uncertainty.

Not a test. Run from the repository root:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mc_speed.py --threads 1 --rounds 5

Every method runs in this one process on the same inputs; rounds are interleaved (each round
runs every method once, in a rotated order) and the table reports medians over rounds, so
drifts of a shared machine hit all methods alike. Before timing, each method's mean predictive
probabilities are compared with the naive loop's (same mean up to MC error).

Methods, per model and S:
  dropkit auto       dropkit.sample(model, x, S)                (strategy="auto": timed)
  dropkit auto, seeded  dropkit.sample(model, x, S, seed=0)     (samples per pass by rule)
  dropkit stacked    dropkit.sample(model, x, S, strategy="stacked")
  naive loop         S passes of the model, dropout modules on, the rest in eval
  baal replicate     baal MCDropoutModule + ModelWrapper.predict_on_batch, replicate_in_memory
  baal caching       baal MCCachingModule(MCDropoutModule) + predict_on_batch, loop
  tu batched / loop  torch-uncertainty's _MCDropout wrapper, on_batch=True / False
  ideal              time(prefix once on B rows) + S x time(suffix on B rows), timed apart in
                     each round (prefix once; S suffix passes in a row, divided by S), medians;
                     the suffix runs the model's own modules (torch's dropout masks)
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import math
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

import dropkit

# ------------------------------------------------------------------------------------------
# models: each exposes prefix(x) -> tuple (everything before the first dropout) and
# suffix(*feats); forward(x) = suffix(*prefix(x)). The split is used only by the "ideal".
# ------------------------------------------------------------------------------------------


class CNNHead(nn.Module):
    """(a) VGG/AlexNet pattern: conv + BatchNorm backbone, dropout classifier head."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 1
        for out in (32, 64, 128):
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(),
                       nn.MaxPool2d(2)]
            c = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc1 = nn.Linear(128, 256)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(256, 10)

    def prefix(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (F.relu(self.fc1(self.features(x))),)

    def suffix(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.suffix(*self.prefix(x))


class MLP(nn.Module):
    """(b) 784-1024-1024-10 with Dropout(0.5) after each hidden ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(784, 1024), nn.Linear(1024, 1024), nn.Linear(1024,
                                                                                          10)
        self.d1, self.d2 = nn.Dropout(0.5), nn.Dropout(0.5)

    def prefix(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (F.relu(self.l1(x)),)

    def suffix(self, h: torch.Tensor) -> torch.Tensor:
        return self.l3(self.d2(F.relu(self.l2(self.d1(h)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.suffix(*self.prefix(x))


class EncoderBlock(nn.Module):
    """Pre-norm encoder block; attention and FFN dropout are nn.Dropout modules (so every peer
    can switch them on)."""

    def __init__(self, d: int, heads: int, p: float) -> None:
        super().__init__()
        self.heads = heads
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.attn_drop, self.proj_drop = nn.Dropout(p), nn.Dropout(p)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Dropout(p),
                                nn.Linear(4 * d, d), nn.Dropout(p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.n1(x)).view(b, t, 3, self.heads, d // self.heads).permute(
            2, 0, 3, 1, 4)  # 3 x (B, nh, T, hs)
        att = self.attn_drop(torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]),
                                           dim=-1))
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj_drop(self.proj(y))
        return x + self.ff(self.n2(x))


class Transformer(nn.Module):
    """(c) token + position embedding, 2 encoder blocks, mean pooling, linear classifier."""

    def __init__(self, vocab: int = 1000, d: int = 128, t: int = 32) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(t, d) * 0.02)
        self.blocks = nn.Sequential(EncoderBlock(d, 4, 0.1), EncoderBlock(d, 4, 0.1))
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, 2)

    def prefix(self, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (self.emb(tokens) + self.pos,)

    def suffix(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.blocks(h)).mean(1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.suffix(*self.prefix(tokens))


class Block(nn.Module):
    def __init__(self, c: int, p: float) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.drop = nn.Dropout(p) if p > 0 else nn.Identity()
        self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

    def branch_in(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.b1(self.c1(x)))

    def branch_out(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.b2(self.c2(self.drop(h))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch_out(x, self.branch_in(x))


class ResCNN(nn.Module):
    """(d) residual CNN; dropout only inside the last block's branch."""

    def __init__(self, c: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.blocks = nn.Sequential(Block(c, 0.0), Block(c, 0.0), Block(c, 0.0))
        self.last = Block(c, 0.3)
        self.fc = nn.Linear(c, 10)

    def prefix(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = self.blocks(self.stem(x))
        return h, self.last.branch_in(h)

    def suffix(self, h: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.fc(self.last.branch_out(h, b).mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.suffix(*self.prefix(x))


def _calibrate_bn(model: nn.Module, x: torch.Tensor) -> None:
    """Give BatchNorm realistic running statistics (one pass in train mode, then eval)."""
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


def make_models(batch: int, seed: int) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    torch.manual_seed(seed)
    out = {}
    a, xa = CNNHead(), torch.randn(batch, 1, 28, 28)
    _calibrate_bn(a, xa)
    out["(a) cnn+bn, dropout head"] = (a, xa)
    out["(b) mlp, dropout everywhere"] = (MLP().eval(), torch.randn(batch, 784))
    out["(c) transformer"] = (Transformer().eval(), torch.randint(0, 1000, (batch // 4, 32)))
    d, xd = ResCNN(), torch.randn(batch // 4, 1, 16, 16)
    _calibrate_bn(d, xd)
    out["(d) residual cnn, dropout last block"] = (d, xd)
    return out


# ------------------------------------------------------------------------------------------
# peers
# ------------------------------------------------------------------------------------------


def load_peers() -> tuple[dict[str, object], list[str]]:
    notes: list[str] = []
    peers: dict[str, object] = {}
    try:
        from importlib.metadata import version

        from baal.bayesian.caching_utils import MCCachingModule
        from baal.bayesian.dropout import MCDropoutModule
        from baal.modelwrapper import ModelWrapper

        peers["baal"] = (MCDropoutModule, MCCachingModule, ModelWrapper)
        notes.append(f"baal {version('baal')}: imported normally")
    except Exception as err:  # noqa: BLE001
        notes.append(f"baal not available: {type(err).__name__}: {err}")
    try:
        import torch_uncertainty  # noqa: F401
        from torch_uncertainty.methods.mc_dropout import _MCDropout

        peers["tu"] = _MCDropout
        notes.append("torch-uncertainty: imported normally")
    except Exception as err:  # noqa: BLE001
        # The package imports torchvision, whose wheels here need the CUDA torch; its MC
        # dropout wrapper needs only torch and einops, so load that one file.
        spec = importlib.util.find_spec("torch_uncertainty")
        loc = None if spec is None or spec.submodule_search_locations is None else Path(
            list(spec.submodule_search_locations)[0]) / "methods" / "mc_dropout.py"
        if loc is not None and loc.exists():
            fspec = importlib.util.spec_from_file_location("tu_mc_dropout", loc)
            assert fspec is not None and fspec.loader is not None
            mod = importlib.util.module_from_spec(fspec)
            fspec.loader.exec_module(mod)
            peers["tu"] = mod._MCDropout
            from importlib.metadata import version

            notes.append(f"torch-uncertainty {version('torch-uncertainty')}: the package does "
                         f"not import here ({type(err).__name__}: {str(err)[:80]}); its "
                         f"_MCDropout wrapper was loaded from the installed file {loc}")
        else:
            notes.append(f"torch-uncertainty not available: {type(err).__name__}: {err}")
    return peers, notes


def baal_runner(peers: dict[str, object], model: nn.Module, caching: bool,
                replicate: bool) -> Callable[[torch.Tensor, int], torch.Tensor]:
    MCDropoutModule, MCCachingModule, ModelWrapper = peers["baal"]  # type: ignore[misc]
    wrapped = MCDropoutModule(copy.deepcopy(model))
    if caching:
        wrapped = MCCachingModule(wrapped)
    wrapped.eval()
    shim = SimpleNamespace(model=wrapped, args=SimpleNamespace(use_cuda=False,
                                                               replicate_in_memory=replicate))

    def run(x: torch.Tensor, s: int) -> torch.Tensor:
        out = ModelWrapper.predict_on_batch(shim, x, iterations=s)  # [B, C, S], baal's own code
        return out.permute(2, 0, 1)

    return run


def tu_runner(peers: dict[str, object], model: nn.Module, s: int,
              on_batch: bool) -> Callable[[torch.Tensor, int], torch.Tensor]:
    wrapped = peers["tu"](copy.deepcopy(model), num_estimators=s, last_layer=False,  # type: ignore[operator]
                          on_batch=on_batch)
    wrapped.eval()

    def run(x: torch.Tensor, s_: int) -> torch.Tensor:
        with torch.no_grad():
            out = wrapped(x)
        return out.reshape(s_, x.shape[0], *out.shape[1:])

    return run


def naive_loop(model: nn.Module) -> Callable[[torch.Tensor, int], torch.Tensor]:
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]

    def run(x: torch.Tensor, s: int) -> torch.Tensor:
        model.eval()
        for m in drops:
            m.train()
        try:
            with torch.no_grad():
                return torch.stack([model(x) for _ in range(s)])
        finally:
            model.eval()

    return run


def ideal_parts(model: nn.Module) -> tuple[Callable[[torch.Tensor], tuple], Callable[..., object]]:
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]

    def prefix(x: torch.Tensor) -> tuple:
        with torch.no_grad():
            return model.prefix(x)

    def suffix(*feats: torch.Tensor) -> object:
        for m in drops:
            m.train()
        try:
            with torch.no_grad():
                return model.suffix(*feats)
        finally:
            for m in drops:
                m.eval()

    return prefix, suffix


# ------------------------------------------------------------------------------------------
# measurement
# ------------------------------------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss(fn: Callable[[], object]) -> float:
    """Peak resident memory above the level before ``fn``, in MB (sampled every 0.5 ms)."""
    base, peak, stop = _rss(), [0], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.0005)

    t = threading.Thread(target=watch)
    t.start()
    try:
        fn()
    finally:
        stop.set()
        t.join()
    return max(0, peak[0] - base) / 1e6


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def mean_check(ref: torch.Tensor, got: torch.Tensor) -> float:
    """Largest |difference| of mean probabilities in units of its standard error."""
    pr, pg = ref.softmax(-1), got.softmax(-1)
    se = ((pr.var(0) / pr.shape[0]) + (pg.var(0) / pg.shape[0])).sqrt().clamp_min(1e-4)
    return float(((pr.mean(0) - pg.mean(0)).abs() / se).max())


def bench_model(name: str, model: nn.Module, x: torch.Tensor, s: int, peers: dict[str, object],
                rounds: int) -> list[dict[str, object]]:
    methods: dict[str, Callable[[], torch.Tensor]] = {
        "dropkit auto": lambda: dropkit.sample(model, x, s),
        "dropkit auto, seeded": lambda: dropkit.sample(model, x, s, seed=0),
        "dropkit stacked": lambda: dropkit.sample(model, x, s, strategy="stacked"),
        "naive loop": lambda: naive_loop(model)(x, s),
    }
    peer_names = []
    if "baal" in peers:
        rep, cach = baal_runner(peers, model, False, True), baal_runner(peers, model, True, False)
        methods["baal replicate"] = lambda: rep(x, s)
        methods["baal caching (loop)"] = lambda: cach(x, s)
        peer_names += ["baal replicate", "baal caching (loop)"]
    if "tu" in peers:
        tub, tul = tu_runner(peers, model, s, True), tu_runner(peers, model, s, False)
        methods["tu batched"] = lambda: tub(x, s)
        methods["tu loop"] = lambda: tul(x, s)
        peer_names += ["tu batched", "tu loop"]
    prefix, suffix = ideal_parts(model)
    feats = prefix(x)

    def det() -> object:
        with torch.no_grad():
            return model(x)

    # warm-up (dropkit auto makes and remembers its decision here) and the sameness check
    outs = {k: f() for k, f in methods.items()}
    ref = outs["naive loop"]
    checks = {k: mean_check(ref, v) for k, v in outs.items()}
    del outs
    times: dict[str, list[float]] = {k: [] for k in [*methods, "det", "prefix", "suffix"]}
    names = list(methods)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        times["det"].append(timed(det))
        for k in order:
            times[k].append(timed(methods[k]))
        times["prefix"].append(timed(lambda: prefix(x)))
        # S suffix passes in a row, timed together: the per-pass median cost of the suffix
        times["suffix"].append(timed(lambda: [suffix(*feats) for _ in range(s)]) / s)
    med = {k: statistics.median(v) for k, v in times.items()}
    ideal = med["prefix"] + s * med["suffix"]
    best_peer = min(med[k] for k in peer_names) if peer_names else float("nan")
    mem = {k: peak_rss(f) for k, f in methods.items()}
    rows = []
    for k in names:
        rows.append({"model": name, "S": s, "method": k, "ms": med[k] * 1e3,
                     "x_det": med[k] / med["det"], "x_best_peer": med[k] / best_peer,
                     "x_ideal": med[k] / ideal, "peak_mb": mem[k], "check_z": checks[k]})
    rows.append({"model": name, "S": s, "method": "ideal", "ms": ideal * 1e3,
                 "x_det": ideal / med["det"], "x_best_peer": ideal / best_peer, "x_ideal": 1.0,
                 "peak_mb": float("nan"), "check_z": float("nan")})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--samples", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default="abcd", help="subset of the letters abcd")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    peers, notes = load_peers()
    with open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                   platform.processor())
    print(f"# mc_speed: torch {torch.__version__}, dropkit {dropkit.__version__}, python "
          f"{platform.python_version()}, cpu {cpu!r} x{os.cpu_count()}, threads {args.threads}, "
          f"batch {args.batch}, rounds {args.rounds}, seed {args.seed}")
    for n in notes:
        print(f"# {n}")
    print(f"# command: {' '.join(sys.argv)}")
    models = make_models(args.batch, args.seed)
    header = ("| model | S | method | ms/batch | x det pass | x best peer | x ideal | peak MB |"
              " mean check (max z) |")
    print(header)
    print("|" + "---|" * 9)
    for name, (model, x) in models.items():
        if name[1] not in args.models:
            continue
        for s in args.samples:
            torch.manual_seed(args.seed)
            for row in bench_model(name, model, x, s, peers, args.rounds):
                print(f"| {row['model']} (B={x.shape[0]}) | {row['S']} | {row['method']} | "
                      f"{row['ms']:.1f} | {row['x_det']:.1f} | {row['x_best_peer']:.2f} | "
                      f"{row['x_ideal']:.2f} | {row['peak_mb']:.0f} | {row['check_z']:.1f} |",
                      flush=True)
    for model, x in models.values():
        reason = dropkit.MCDropout(model, samples=100, progress=False).predict(x).strategy_reason
        print(f"# dropkit auto on {type(model).__name__}: {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
