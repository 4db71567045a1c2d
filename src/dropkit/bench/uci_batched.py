"""K independent one-hidden-layer MC-dropout regressors trained as one batched model.

Every tensor carries the network index first: parameters ``w1 (K, D, H)``, ``b1 (K, 1, H)``,
``w2 (K, H, 1)``, ``b2 (K, 1, 1)``; data ``X (K, N, D)``, ``y (K, N)``. One optimisation step
of all K networks is a handful of batched matrix products, with gradients written out by hand
(the network is small enough that this is shorter and faster than autograd). Each network has
its own initialisation, minibatch order, dropout masks, dropout rate and weight decay, so the
result is the same as training the K networks one after another (``tests/test_bench_uci.py``
checks one network of a batch against ``torch.nn`` + ``torch.optim.Adam``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

__all__ = ["BatchedMLP", "StepCallback", "glorot_init", "mc_evaluate", "train_batched"]

StepCallback = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None]
"""``(step, idx (K, b), mask1 (K, b, D), mask2 (K, b, H))``, called before each update."""


@dataclass
class BatchedMLP:
    """Stacked parameters of K networks ``Dropout -> Linear -> ReLU -> Dropout -> Linear``."""

    w1: torch.Tensor  # (K, D, H)
    b1: torch.Tensor  # (K, 1, H)
    w2: torch.Tensor  # (K, H, 1)
    b2: torch.Tensor  # (K, 1, 1)

    def tensors(self) -> list[torch.Tensor]:
        return [self.w1, self.b1, self.w2, self.b2]

    def select(self, k: int) -> BatchedMLP:
        """Network ``k`` as a batch of one (copies)."""
        return BatchedMLP(*(t[k : k + 1].clone() for t in self.tensors()))


def glorot_init(
    n_networks: int, n_in: int, n_hidden: int, *, generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> BatchedMLP:
    """Glorot-uniform weights, ``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``, zero
    biases (the Keras ``Dense`` defaults used by the original code); independent per network."""
    a1 = math.sqrt(6.0 / (n_in + n_hidden))
    a2 = math.sqrt(6.0 / (n_hidden + 1))
    w1 = torch.rand(n_networks, n_in, n_hidden, generator=generator, dtype=dtype) * (2 * a1) - a1
    w2 = torch.rand(n_networks, n_hidden, 1, generator=generator, dtype=dtype) * (2 * a2) - a2
    b1 = torch.zeros(n_networks, 1, n_hidden, dtype=dtype)
    b2 = torch.zeros(n_networks, 1, 1, dtype=dtype)
    return BatchedMLP(w1, b1, w2, b2)


def _masks(shape: tuple[int, ...], p: torch.Tensor, scale: torch.Tensor,
           generator: torch.Generator) -> torch.Tensor:
    """Inverted-dropout masks: 0 with probability p_k, else 1 / (1 - p_k); ``shape[0] = K``."""
    u = torch.rand(shape, generator=generator, dtype=p.dtype)
    return (u >= p).to(p.dtype).mul_(scale)


def train_batched(
    model: BatchedMLP,
    X: torch.Tensor,
    y: torch.Tensor,
    p: torch.Tensor,
    reg: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    generator: torch.Generator,
    on_step: StepCallback | None = None,
    progress: str | None = None,
) -> BatchedMLP:
    """Train K networks in place with Adam; returns ``model``.

    Per network k and minibatch (x_b, y_b) of size b the loss is
    ``mean_b (f_k(x_b) - y_b)^2 + reg_k (|W1_k|^2 + |W2_k|^2)``. Each epoch visits every row
    once in a fresh random order per network, in batches of ``batch_size`` (the last one
    smaller), as Keras ``fit(shuffle=True)`` does. Shapes: ``X (K, N, D)``, ``y (K, N)``,
    ``p (K,)``, ``reg (K,)``.
    """
    K, N, D = X.shape
    dtype = X.dtype
    p3 = p.to(dtype).view(K, 1, 1)
    scale = 1.0 / (1.0 - p3)
    two_reg = (2.0 * reg.to(dtype)).view(K, 1, 1)
    params = model.tensors()
    m_state = [torch.zeros_like(t) for t in params]
    v_state = [torch.zeros_like(t) for t in params]
    beta1, beta2 = betas
    y3 = y.unsqueeze(-1)  # (K, N, 1)
    step = 0
    for _ in tqdm(range(epochs), desc=progress, disable=progress is None, leave=False):
        perm = torch.argsort(torch.rand(K, N, generator=generator), dim=1)  # (K, N)
        Xp = torch.gather(X, 1, perm.unsqueeze(-1).expand(K, N, D))
        yp = torch.gather(y3, 1, perm.unsqueeze(-1))
        for start in range(0, N, batch_size):
            stop = min(start + batch_size, N)
            b = stop - start
            xb, yb = Xp[:, start:stop], yp[:, start:stop]  # (K, b, D), (K, b, 1)
            m1 = _masks((K, b, D), p3, scale, generator)
            m2 = _masks((K, b, model.w1.shape[2]), p3, scale, generator)
            if on_step is not None:
                on_step(step, perm[:, start:stop], m1, m2)
            grads = _gradients(model, xb * m1, yb, m2, two_reg)
            step += 1
            _adam_update(params, grads, m_state, v_state, step, lr, beta1, beta2, eps)
    return model


def _gradients(model: BatchedMLP, x1: torch.Tensor, yb: torch.Tensor, m2: torch.Tensor,
               two_reg: torch.Tensor) -> list[torch.Tensor]:
    """Hand-written backward pass of the loss of ``train_batched`` (x1 = dropped inputs)."""
    b = x1.shape[1]
    a = torch.baddbmm(model.b1, x1, model.w1)  # (K, b, H)
    d = m2.masked_fill_(a <= 0, 0.0)  # d h / d a: ReLU gate times dropout scale
    h = a.mul_(d)  # (K, b, H), a is not needed any more
    out = torch.baddbmm(model.b2, h, model.w2)  # (K, b, 1)
    g_out = out.sub_(yb).mul_(2.0 / b)  # d mean_b (out - y)^2 / d out
    g_w2 = torch.baddbmm(model.w2 * two_reg, h.transpose(1, 2), g_out)
    g_b2 = g_out.sum(1, keepdim=True)
    g_a = (g_out * model.w2.transpose(1, 2)).mul_(d)  # (K, b, H)
    g_w1 = torch.baddbmm(model.w1 * two_reg, x1.transpose(1, 2), g_a)
    g_b1 = g_a.sum(1, keepdim=True)
    return [g_w1, g_b1, g_w2, g_b2]


def _adam_update(params: list[torch.Tensor], grads: list[torch.Tensor],
                 m_state: list[torch.Tensor], v_state: list[torch.Tensor], step: int,
                 lr: float, beta1: float, beta2: float, eps: float) -> None:
    """Adam, written as in ``torch.optim.Adam`` (elementwise, so per network by construction)."""
    bc1 = 1.0 - beta1**step
    bc2_sqrt = math.sqrt(1.0 - beta2**step)
    for param, g, m, v in zip(params, grads, m_state, v_state, strict=True):
        m.lerp_(g, 1.0 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        denom = (v.sqrt() / bc2_sqrt).add_(eps)
        param.addcdiv_(m, denom, value=-lr / bc1)


@dataclass
class MCStats:
    """Per network: RMSE of the MC mean, mean MC log-likelihood, RMSE without dropout."""

    rmse: torch.Tensor  # (K,)
    ll: torch.Tensor  # (K,)
    rmse_standard: torch.Tensor  # (K,)


@torch.no_grad()
def mc_evaluate(
    model: BatchedMLP,
    X: torch.Tensor,
    y: torch.Tensor,
    p: torch.Tensor,
    *,
    y_scale: torch.Tensor,
    tau: torch.Tensor,
    n_samples: int,
    generator: torch.Generator,
    chunk_elements: int = 1 << 23,
) -> MCStats:
    """T = ``n_samples`` MC dropout passes of every network, reduced with streaming statistics.

    ``X (K, M, D)`` and ``y (K, M)`` are normalised with each network's training statistics;
    ``y_scale (K,)`` is the training std of y and ``tau (K,)`` the precision in original
    units. With ``yhat_t`` the t-th pass in original units, per point

        ll = logsumexp_t(-tau/2 (y - yhat_t)^2) - log T - log(2 pi)/2 + log(tau)/2,

    averaged over points; the logsumexp over T is taken chunk by chunk,
    ``logaddexp(running, logsumexp_chunk)``, so memory stays at ``chunk_elements`` hidden
    activations whatever T is. RMSE is that of the MC mean ``mean_t yhat_t``.
    """
    K, M, D = X.shape
    H = model.w1.shape[2]
    dtype = X.dtype
    p3 = p.to(dtype).view(K, 1, 1)
    scale = 1.0 / (1.0 - p3)
    tau2 = tau.to(dtype).view(K, 1, 1)
    ys = y_scale.to(dtype).view(K, 1, 1)
    per_pass = K * M * H
    s_max = max(1, chunk_elements // per_pass)
    total = torch.zeros(K, M, dtype=torch.float64)
    running = torch.full((K, M), -math.inf, dtype=torch.float64)
    done = 0
    while done < n_samples:
        s = min(s_max, n_samples - done)
        xr = X.unsqueeze(1).expand(K, s, M, D).reshape(K, s * M, D)
        x1 = xr * _masks((K, s * M, D), p3, scale, generator)
        a = torch.baddbmm(model.b1, x1, model.w1)  # (K, s*M, H)
        h = a.clamp_min_(0.0).mul_(_masks((K, s * M, H), p3, scale, generator))
        out = torch.baddbmm(model.b2, h, model.w2).view(K, s, M)  # (K, s*M, 1) -> (K, s, M)
        total += out.sum(1, dtype=torch.float64)
        resid = (y.unsqueeze(1) - out).mul_(ys)  # original units, (K, s, M)
        log_w = resid.square_().mul_(-0.5 * tau2)
        running = torch.logaddexp(running, torch.logsumexp(log_w, dim=1).double())
        done += s
    tau64 = tau.double().view(K, 1)
    ll_point = (running - math.log(n_samples) - 0.5 * math.log(2 * math.pi)
                + 0.5 * torch.log(tau64))
    mean = total / n_samples
    y64, scale64 = y.double(), y_scale.double()
    rmse = ((y64 - mean).square().mean(1)).sqrt() * scale64
    plain = torch.baddbmm(model.b2, torch.baddbmm(model.b1, X, model.w1).clamp_min_(0.0),
                          model.w2).squeeze(-1)
    rmse_standard = ((y64 - plain.double()).square().mean(1)).sqrt() * scale64
    return MCStats(rmse=rmse, ll=ll_point.mean(1), rmse_standard=rmse_standard)
