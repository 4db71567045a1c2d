"""Small hand-built models in the styles MC dropout must handle, and the model-state helpers
(`snapshot`, `assert_same_state`) of the mc tests. Real model families are in
`tests.zoo.families`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CNN(nn.Module):
    """VGG/AlexNet pattern: conv + BatchNorm backbone, dropout classifier head."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5),
                                  nn.Linear(16, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class FunctionalMLP(nn.Module):
    """Dropout written in forward, gated by the module's own flag."""

    def __init__(self, d: int = 6, classes: int = 3, p: float = 0.3) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(d, 16), nn.Linear(16, 16), nn.Linear(16, classes)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.dropout(F.relu(self.fc1(x)), self.p, training=self.training)
        x = F.dropout(F.relu(self.fc2(x)), p=self.p, training=self.training)
        return self.out(x)


class CausalSelfAttention(nn.Module):
    """nanoGPT-style attention: SDPA with dropout_p gated by the flag, plus resid dropout."""

    def __init__(self, d: int = 16, heads: int = 2, p: float = 0.2) -> None:
        super().__init__()
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.resid_dropout = nn.Dropout(p)
        self.n_head, self.dropout = heads, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None,
                                           dropout_p=self.dropout if self.training else 0,
                                           is_causal=True)
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        return self.resid_dropout(self.c_proj(y))


class Block(nn.Module):
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d),
                                 nn.Dropout(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class AttentionOnly(nn.Module):
    """Only SDPA attention dropout: the stochasticity must come from the functional call."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = CausalSelfAttention()
        self.attn.resid_dropout = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x)


def transformer_encoder() -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.2, batch_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


class HardCoded(nn.Module):
    """Dropout that is always on (training=True): found, reported, never controllable."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 3)
        self.drop = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(F.dropout(self.fc(x), 0.5, training=True))


class FlagAlsoGatesOther(nn.Module):
    """self.training gates dropout AND a different computation: switching it is unsafe."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.dropout(self.fc(x), 0.5, training=self.training)
        if self.training:
            x = x + 1.0
        return x


def snapshot(model: nn.Module) -> tuple[dict[str, torch.Tensor], list[bool]]:
    """Every parameter and buffer (cloned) and every training flag."""
    state = {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}
    return state, [m.training for m in model.modules()]


def assert_same_state(model: nn.Module, snap: tuple[dict[str, torch.Tensor], list[bool]]) -> None:
    state, flags = snap
    now = model.state_dict(keep_vars=True)
    assert state.keys() == now.keys()
    for k, v in state.items():
        assert torch.equal(v, now[k].detach()), f"{k} changed"
        assert v.dtype == now[k].dtype
    assert flags == [m.training for m in model.modules()]


class IfGated(nn.Module):
    """`if self.training: x = F.dropout(x, p)`: gated by the flag through an if-block."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.out = nn.Linear(6, 16), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc(x))
        if self.training:
            x = F.dropout(x, 0.4)
        return self.out(x)


class ChildNamedDropout(nn.Module):
    """A child module called `dropout` (nanoGPT, HF): a module site, not functional dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.fc, self.dropout = nn.Linear(6, 3), nn.Dropout(0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc(x))


# ---- models of the cached-prefix tests ----


def cnn_bn_head() -> nn.Module:
    """CNN backbone with BatchNorm and pooling, dropout only in the classifier head."""
    net = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Linear(32, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 4))
    with torch.no_grad():  # non-trivial running statistics
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


class ConvBlock(nn.Module):
    def __init__(self, c: int, p: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.drop = nn.Dropout2d(p) if p > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(self.drop(F.relu(self.bn(self.conv1(x))))))


class ResNet(nn.Module):
    """Residual CNN: deterministic stem and block, dropout inside the later blocks' branches."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.blocks = nn.Sequential(ConvBlock(4, 0.0), ConvBlock(4, 0.3), ConvBlock(4, 0.3))
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(F.relu(self.stem(x)))
        return self.head(h.mean(dim=(2, 3)))


def mlp() -> nn.Module:
    """MLP with dropout after every hidden layer."""
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 32),
                         nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 5)).eval()


class Attention(nn.Module):
    """Self-attention with functional SDPA dropout gated by the training flag."""

    def __init__(self, d: int, heads: int, p: float) -> None:
        super().__init__()
        self.qkv, self.proj, self.heads, self.p = nn.Linear(d, 3 * d), nn.Linear(d, d), heads, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.p if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Transformer(nn.Module):
    """Small transformer classifier: embedding, a torch encoder layer (attention and FFN
    dropout), a hand-written attention block with SDPA dropout, F.dropout, mean pooling."""

    def __init__(self, vocab: int = 20, d: int = 16, classes: int = 3) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(8, d) * 0.1)
        self.enc = nn.TransformerEncoderLayer(d, 2, 32, dropout=0.2, batch_first=True)
        self.attn = Attention(d, 2, 0.2)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.emb(tokens) + self.pos[: tokens.shape[1]]
        h = self.enc(h)
        h = self.norm(h + self.attn(h))
        return self.head(F.dropout(h.mean(1), 0.1, training=self.training))


class TwoHeads(nn.Module):
    """Two outputs: a stochastic regression mean and a deterministic feature."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.drop, self.mu = nn.Linear(4, 8), nn.Dropout(0.4), nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.body(x))
        return self.mu(self.drop(h)).squeeze(-1), h


class SkipAcross(nn.Module):
    """A skip from before the first dropout to after it (hooks must not cache across it)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.drop, self.b = nn.Linear(6, 6), nn.Dropout(0.5), nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        return self.b(self.drop(h) + h)


class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.drop, self.b = nn.Linear(6, 6), nn.Dropout(0.5), nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        if float(h.sum()) > -1.0:  # always true; fx cannot know
            h = h * 1.0
        return self.b(self.drop(h))
