"""Small models for the lint tests, in the style of well-known architectures.

Each is a few layers of the real thing, enough for its dropout placement; the factories at the
bottom serve the CLI tests (``dropkit lint tests.lint_models:vgg_factory``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def vgg_like(p: float = 0.5) -> nn.Sequential:
    """VGG/AlexNet style: conv features, then Linear-ReLU-Dropout twice and a last Linear."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 32), nn.ReLU(), nn.Dropout(p),
        nn.Linear(32, 32), nn.ReLU(), nn.Dropout(p),
        nn.Linear(32, 10),
    )


def alexnet_head() -> nn.Sequential:
    """torchvision AlexNet's head: Dropout(0.5) straight on the flattened conv features."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(32, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 10),
    )


class DenseLayer(nn.Module):
    """torchvision's _DenseLayer: BN-ReLU-Conv1x1-BN-ReLU-Conv3x3, then functional dropout."""

    def __init__(self, c_in: int, growth: int = 4, drop_rate: float = 0.2) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, 2 * growth, 1)
        self.norm2, self.conv2 = nn.BatchNorm2d(2 * growth), nn.Conv2d(2 * growth, growth, 3,
                                                                       padding=1)
        self.drop_rate = drop_rate

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, 1)
        x = self.conv1(F.relu(self.norm1(x)))
        x = self.conv2(F.relu(self.norm2(x)))
        return F.dropout(x, p=self.drop_rate, training=self.training)


class DenseBlock(nn.Module):
    """Two dense layers: the first one's dropped features reach the second one's BatchNorm."""

    def __init__(self, c_in: int = 3, growth: int = 4, drop_rate: float = 0.2) -> None:
        super().__init__()
        self.layers = nn.ModuleList([DenseLayer(c_in + i * growth, growth, drop_rate)
                                     for i in range(2)])
        self.head = nn.Linear(c_in + 2 * growth, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return self.head(torch.cat(features, 1).mean((2, 3)))


class ResBlock(nn.Module):
    """ResNet basic block; ``drop`` is ``"stream"`` (after the add), ``"skip"`` (on the
    identity), ``"wide"`` (between the convs, as Wide ResNet) or ``"none"``."""

    def __init__(self, c: int = 8, drop: str = "none", p: float = 0.3) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.drop, self.dropout = drop, nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        if self.drop == "wide":
            out = self.dropout(out)
        out = self.bn2(self.conv2(out))
        identity = self.dropout(x) if self.drop == "skip" else x
        out = F.relu(out + identity)
        return self.dropout(out) if self.drop == "stream" else out


class ResNet(nn.Module):
    def __init__(self, drop: str = "none", p: float = 0.3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(ResBlock(8, drop, p), ResBlock(8, drop, p))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * 4 * 4, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 4))


class CausalSelfAttention(nn.Module):
    """nanoGPT's attention: SDPA with ``dropout_p=self.dropout if self.training else 0``."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.resid_dropout = nn.Dropout(dropout)
        self.n_head, self.dropout = heads, dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in (q, k, v))  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None,
                                           dropout_p=self.dropout if self.training else 0,
                                           is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, d: int, dropout: float) -> None:
        super().__init__()
        self.c_fc, self.c_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    """nanoGPT's pre-LN block; ``stream_dropout`` adds a (wrong) dropout on x + attn(x)."""

    def __init__(self, d: int, heads: int, dropout: float, stream_dropout: bool = False) -> None:
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(d), CausalSelfAttention(d, heads, dropout)
        self.ln_2, self.mlp = nn.LayerNorm(d), MLP(d, dropout)
        self.stream = nn.Dropout(0.1) if stream_dropout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        if self.stream is not None:
            x = self.stream(x)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """nanoGPT in miniature: token + position embeddings, dropout, blocks, ln_f, lm_head."""

    def __init__(self, vocab: int = 32, block_size: int = 8, d: int = 16, heads: int = 2,
                 layers: int = 2, dropout: float = 0.1, stream_dropout: bool = False) -> None:
        super().__init__()
        self.block_size = block_size
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(block_size, d)
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList([Block(d, heads, dropout, stream_dropout) for _ in range(layers)])
        self.ln_f, self.lm_head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        b, t = idx.size()
        assert t <= self.block_size, f"sequence of length {t} > block size {self.block_size}"
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def transformer_encoder(dropout: float = 0.1) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=dropout, batch_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


class FunctionalDropout(nn.Module):
    """Functional dropout done right: gated by ``self.training``, which gates nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.dropout(F.relu(self.fc1(x)), 0.3, training=self.training))


class IfGatedDropout(nn.Module):
    """``if self.training: h = F.dropout(h, p)``: gated by the flag, written as a branch."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc1(x))
        if self.training:
            h = F.dropout(h, 0.3)
        return self.fc2(h)


class HardCodedDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.dropout(F.relu(self.fc1(x)), 0.3, training=True))


class SharedFlagDropout(nn.Module):
    """``self.training`` gates the dropout and also a noise injection: not separable."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc1(x))
        if self.training:
            h = h + 0.01 * torch.randn_like(h)
        return self.fc2(F.dropout(h, 0.3, training=self.training))


def _helper_dropout(x: torch.Tensor) -> torch.Tensor:
    return F.dropout(x, 0.3, training=True)


class HelperDropout(nn.Module):
    """Dropout called from a function outside the class: only the forward pass sees it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(_helper_dropout(F.relu(self.fc1(x))))


class Untraceable(nn.Module):
    """Data-dependent control flow (torch.fx cannot trace it) with dropout before BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.drop = nn.Linear(8, 16), nn.Dropout(0.5)
        self.fc2, self.bn, self.out = nn.Linear(16, 16), nn.BatchNorm1d(16), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        if h.sum() > 0:  # data-dependent branch
            h = F.relu(h)
        return self.out(self.bn(self.fc2(self.drop(h))))


def conv_dropout(p: float = 0.5, kind: type[nn.Module] = nn.Dropout) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), kind(p),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 10))


def logits_dropout() -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4), nn.Dropout(0.2))


def layernorm_dropout() -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Dropout(0.1), nn.Linear(16, 4))


def mlp(p: float | None = 0.2) -> nn.Sequential:
    drop = [nn.Dropout(p)] if p is not None else []
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), *drop, nn.Linear(16, 4))


class Rescale(nn.Module):
    """Llama's and T5's RMSNorm written by hand (``T5LayerNorm``, ``LlamaRMSNorm``), under a
    name that says nothing about norms: x * rsqrt(mean(x^2) + eps) * w."""

    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(variance + self.eps)
        return self.weight * x


class Standardize(nn.Module):
    """LayerNorm written by hand: (x - mean) / sqrt(var + eps) * w + b."""

    def __init__(self, d: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(d)), nn.Parameter(torch.zeros(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, var = x.mean(-1, keepdim=True), x.var(-1, keepdim=True, unbiased=False)
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight + self.bias


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: x scaled by a gate computed from its own mean through two layers
    (a statistic of x, but not a normalisation)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, 4, 1), nn.Conv2d(4, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


NORMS: dict[str, type[nn.Module]] = {"hand-rms": Rescale, "hand-layer": Standardize,
                                     "torch-rms": nn.RMSNorm}


class T5Attention(nn.Module):
    """T5's attention without its dropout: softmax(q k^T) v, keys and values from ``kv``."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))

    def forward(self, x: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.q(x) @ self.k(kv).transpose(1, 2), dim=-1)  # (B, T, T_kv)
        return self.o(w @ self.v(kv))


class T5Block(nn.Module):
    """T5's block: pre-norm sub-layers, dropout on each sub-layer's output before the add (the
    decoder adds cross-attention on the encoder output). ``stream`` adds a (wrong) dropout on
    the block's output sum."""

    def __init__(self, d: int, norm: str, cross: bool, stream: bool = False) -> None:
        super().__init__()
        self.norm1, self.attn, self.drop1 = NORMS[norm](d), T5Attention(d), nn.Dropout(0.1)
        self.cross = nn.ModuleList([NORMS[norm](d), T5Attention(d), nn.Dropout(0.1)]) \
            if cross else None
        self.norm3, self.drop3 = NORMS[norm](d), nn.Dropout(0.1)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Dropout(0.1),
                                nn.Linear(2 * d, d))
        self.stream = nn.Dropout(0.1) if stream else None

    def forward(self, h: torch.Tensor, enc: torch.Tensor | None) -> torch.Tensor:
        x = self.norm1(h)
        h = h + self.drop1(self.attn(x, x))
        if self.cross is not None and enc is not None:
            norm, attn, drop = self.cross
            h = h + drop(attn(norm(h), enc))
        h = h + self.drop3(self.ff(self.norm3(h)))
        return self.stream(h) if self.stream is not None else h


class T5Stack(nn.Module):
    """Embeddings -> dropout -> blocks -> final_layer_norm -> the same dropout again (T5 reuses
    its one ``dropout`` module for the embeddings and the stack's output)."""

    def __init__(self, vocab: int, d: int, norm: str, cross: bool, stream: bool) -> None:
        super().__init__()
        self.embed_tokens, self.dropout = nn.Embedding(vocab, d), nn.Dropout(0.1)
        self.block = nn.ModuleList([T5Block(d, norm, cross, stream) for _ in range(2)])
        self.final_layer_norm = NORMS[norm](d)

    def forward(self, ids: torch.Tensor, enc: torch.Tensor | None = None) -> torch.Tensor:
        h = self.dropout(self.embed_tokens(ids))
        for block in self.block:
            h = block(h, enc)
        return self.dropout(self.final_layer_norm(h))


class T5Like(nn.Module):
    """T5 for generation in miniature: the encoder's output (after final norm and dropout) feeds
    the decoder's cross-attention, whose own residual adds then read it; an lm_head on top."""

    def __init__(self, norm: str = "hand-rms", vocab: int = 32, d: int = 16,
                 stream: bool = False) -> None:
        super().__init__()
        self.encoder = T5Stack(vocab, d, norm, False, stream)
        self.decoder = T5Stack(vocab, d, norm, True, stream)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids: torch.Tensor, decoder_ids: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.decoder(decoder_ids, self.encoder(ids)))


def _eager_attention(module: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     dropout: float = 0.0) -> torch.Tensor:
    """Hugging Face's ``eager_attention_forward``: a function outside the attention class."""
    w = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
    return F.dropout(w, p=dropout, training=module.training) @ v


def _sdpa_attention(module: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    dropout: float = 0.0) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)


class HFAttention(nn.Module):
    """Hugging Face's attention (Llama, T5, BERT): the rate goes to an attention function as
    ``dropout=0.0 if not self.training else self.attention_dropout``, so it is 0 while this
    module's flag is off (mc_mode does not switch it today)."""

    def __init__(self, d: int, attention_dropout: float, impl: str = "eager") -> None:
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(d, d) for _ in range(3))
        self.attention_dropout, self.impl = attention_dropout, impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attend = _eager_attention if self.impl == "eager" else _sdpa_attention
        return attend(self, self.q(x), self.k(x), self.v(x),
                      dropout=0.0 if not self.training else self.attention_dropout)


class HFEncoder(nn.Module):
    """BERT in miniature: embeddings -> LayerNorm -> dropout, then post-norm layers whose
    attention is `HFAttention`; ``hidden_dropout=None`` leaves the dropout modules out."""

    def __init__(self, attention_dropout: float = 0.1, hidden_dropout: float | None = 0.1,
                 impl: str = "eager", vocab: int = 32, d: int = 16) -> None:
        super().__init__()
        self.embed, self.ln = nn.Embedding(vocab, d), nn.LayerNorm(d)
        hidden = (lambda: nn.Dropout(hidden_dropout)) if hidden_dropout is not None \
            else nn.Identity
        self.dropout = hidden()
        self.attn = nn.ModuleList([HFAttention(d, attention_dropout, impl) for _ in range(2)])
        self.out = nn.ModuleList([nn.Sequential(nn.Linear(d, d), hidden()) for _ in range(2)])
        self.norm = nn.ModuleList([nn.LayerNorm(d) for _ in range(2)])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.ln(self.embed(ids)))
        for attn, out, norm in zip(self.attn, self.out, self.norm, strict=True):
            h = norm(h + out(attn(h)))
        return h


def placeholder_and_live() -> nn.Sequential:
    """A live dropout and a p=0 placeholder (timm's ``drop_rate=0.`` beside a set rate)."""
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Dropout(0.0),
                         nn.Linear(16, 4))


# Factories for the CLI.
def vgg_factory() -> nn.Module:
    return vgg_like()


def densenet_pair() -> tuple[nn.Module, torch.Tensor]:
    return DenseBlock(), torch.randn(2, 3, 8, 8)


def gpt_pair() -> tuple[nn.Module, torch.Tensor]:
    return GPT(), torch.randint(0, 32, (2, 8))


def not_a_module() -> int:
    return math.floor(3.5)


NOT_CALLABLE = 3
