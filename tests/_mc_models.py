"""Small models shared by the cached-sampling tests (not a test module)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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


class Block(nn.Module):
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
        self.blocks = nn.Sequential(Block(4, 0.0), Block(4, 0.3), Block(4, 0.3))
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
