"""K independent one-hidden-layer MC-dropout regressors trained as one batched model.

Every tensor carries the network index first: parameters ``w1 (K, D, H)``, ``b1 (K, 1, H)``,
``w2 (K, H, 1)``, ``b2 (K, 1, 1)``; data ``X (K, N, D)``, ``y (K, N)``. One optimisation step
of all K networks is a handful of batched matrix products, with gradients written out by hand
(the network is small enough that this is shorter and faster than autograd). Each network has
its own initialisation, minibatch order, dropout masks, dropout rate and weight decay, so the
result is the same as training the K networks one after another (``tests/test_bench_uci.py``
checks one network of a batch against ``torch.nn`` + ``torch.optim.Adam``).

Two backends compute the same thing: ``torch`` (torch ops over all K networks at once) and
``native`` (``uci_native.c``: one network's whole step while it sits in the L1 cache, compiled
on first use; 2x to 3x faster at the benchmark's sizes; without a C compiler its numba twin,
``uci_native_numba.py``). Both consume the generator
identically, so they train the same networks up to rounding (``tests/test_bench_uci_native.py``).

Dropout masks are drawn as the positions of the dropped entries (``drop_positions``: partial
sums of geometric gaps), which is exactly i.i.d. Bernoulli(p) but needs about ``n p`` random
numbers instead of n; at the benchmark's p <= 0.1 random numbers stop being the bottleneck.
A network's input and hidden masks of a step (or of S MC passes) are one such sequence of
``rows * (D + H)`` entries: the ``rows * D`` input entries first, then the hidden ones.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from dropkit._progress import progress_bar
from dropkit._validate import check_choice
from dropkit.bench.uci_config import BACKENDS
from dropkit.bench.uci_kernels import _log_once, native_kernels
from dropkit.bench.uci_native import NativeKernels
from dropkit.errors import DropkitError
from dropkit.measures.likelihood import MixtureLogLikelihood

__all__ = ["BACKENDS", "BatchedMLP", "StepCallback", "drop_positions", "glorot_init",
           "mc_evaluate", "resolve_backend", "train_batched"]

StepCallback = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None]
"""``(step, idx (K, b), keep1 (K, b, D), keep2 (K, b, H))``, called before each update; the
keep-masks are binary (the factor 1 / (1 - p) sits on the weights) and only built for it."""


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


def drop_positions(n: int, p: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flat indices into a ``(K, n)`` tensor of entries dropped i.i.d. with probability p_k.

    The positions of the successes of a Bernoulli(p) sequence are the partial sums of
    i.i.d. Geometric(p) gaps, ``gap = floor(log(1 - U) / log(1 - p)) + 1`` with U uniform on
    [0, 1) (float64), so only about ``n p`` random numbers are drawn instead of n: 10x to 200x
    fewer for the benchmark's p in [0.005, 0.1], which makes dropout masks cheap next to the
    matmuls. The draw order is ``_DropSampler``'s; the training and MC code draw the input
    and hidden masks of a network as one sequence of ``rows * (D + H)`` entries.
    """
    sampler = _DropSampler(p)
    found = [pos.add(ks.unsqueeze(1) * n)[pos < n] for ks, pos in sampler.positions(n, generator)]
    return torch.cat(found) if found else torch.empty(0, dtype=torch.int64)


class _DropSampler:
    """Dropped positions for fixed rates p (K,), drawn in rounds.

    Round one draws, for every network with p > 0 (grouped by rate, groups in increasing p),
    ``mean + 4 sd + 8`` gaps, mean = n p; the networks whose positions have not reached n yet
    draw ``4 sd + 8`` more per round. Each round is one ``torch.rand`` call, network after
    network, and ``L = log(1 - U)`` is what both backends turn into positions
    (``uci_native.c: drops_from_gaps`` is the native twin of ``positions``).
    """

    def __init__(self, p: torch.Tensor) -> None:
        p64 = p.detach().to(torch.float64).cpu()
        self.K = p64.numel()
        rows = torch.arange(self.K, dtype=torch.int64)
        groups = [rows[p64 == value] for value in torch.unique(p64).tolist() if value > 0.0]
        self.order = torch.cat(groups) if groups else rows[:0]  # networks of round one
        q = p64.clamp(max=1.0 - 1e-12)
        self.inv_log_q = torch.where(p64 > 0, 1.0 / torch.log1p(-q), 0.0)  # (K,)
        self.p = p64
        self._widths: dict[int, tuple[torch.Tensor, torch.Tensor, int]] = {}

    def widths(self, n: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Per network (K,): gaps in round one, gaps in later rounds; round one's total."""
        if n not in self._widths:
            mean = n * self.p
            sd4 = 4.0 * mean.sqrt() + 8.0
            first = (mean + sd4).to(torch.int64)
            later = sd4.to(torch.int64)
            self._widths[n] = (first, later, int(first[self.order].sum()))
        return self._widths[n]

    def rounds(self, n: int, generator: torch.Generator,
               consume: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
               ) -> None:
        """Draw round after round; ``consume(ks, width, L)`` turns round's ``L`` (flat, ks[0]'s
        ``width[ks[0]]`` values first) into positions and returns the networks still short."""
        first, later, total = self.widths(n)
        ks, width = self.order, first
        while True:
            # 1 - U is exact in float64; log is several times faster than log1p in torch
            L = torch.rand(total, dtype=torch.float64, generator=generator).neg_().add_(1.0)
            ks = consume(ks, width, L.log_())
            if not ks.numel():
                return
            width = later
            total = int(later[ks].sum())

    def positions(self, n: int, generator: torch.Generator
                  ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Blocks ``(ks (r,), pos (r, w))``: sorted positions per network, those >= n unused."""
        last = torch.full((self.K,), -1, dtype=torch.int64)
        found: list[tuple[torch.Tensor, torch.Tensor]] = []

        def consume(ks: torch.Tensor, width: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
            w = width[ks]
            start = 0
            short = []
            # networks of one rate are consecutive in ks and share a width
            for w_run, count in zip(*torch.unique_consecutive(w, return_counts=True),
                                    strict=True):
                w_run, count = int(w_run), int(count)
                run = ks[start : start + count]
                e = L[: w_run * count].view(count, w_run)
                L = L[w_run * count :]
                start += count
                # truncation is the floor (e >= 0); gaps past the end are all alike, so clip
                # them (no int64 overflow for tiny p)
                pos = e.mul(self.inv_log_q[run].unsqueeze(1)).clamp_max_(float(n))
                pos = pos.to(torch.int64).add_(1).cumsum_(1).add_(last[run].unsqueeze(1))
                last[run] = pos[:, -1]
                found.append((run, pos))
                short.append(run[pos[:, -1] < n])
            return torch.cat(short) if short else ks  # ks is empty then

        self.rounds(n, generator, consume)
        return found

    def split(self, rows: int, D: int, H: int, generator: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat dropped indices into ``(K, rows, D)`` and ``(K, rows, H)``, one sequence of
        ``rows (D + H)`` per network; unused slots hold the index one past the end (trash)."""
        n_in, n = rows * D, rows * (D + H)
        trash1, trash2 = self.K * n_in, self.K * rows * H
        drop1, drop2 = [], []
        for ks, pos in self.positions(n, generator):
            is_in = pos < n_in
            drop1.append(torch.where(is_in, pos + (ks * n_in).unsqueeze(1), trash1).view(-1))
            is_hid = (pos < n) & ~is_in
            drop2.append(torch.where(is_hid, pos - n_in + (ks * rows * H).unsqueeze(1),
                                     trash2).view(-1))
        if not drop1:
            return torch.full((1,), trash1), torch.full((1,), trash2)
        return torch.cat(drop1), torch.cat(drop2)


def _keep_mask(shape: tuple[int, ...], flat: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The binary keep-mask that ``flat`` (trash index = numel) stands for (for ``on_step``)."""
    n = math.prod(shape)
    return torch.ones(n + 1, dtype=dtype).index_fill_(0, flat, 0.0)[:n].view(shape)


def _with_trash(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised contiguous tensor of ``shape`` followed in memory by one spare element,
    the target of the ``trash`` drop indices."""
    n = math.prod(shape)
    return torch.empty(n + 1, dtype=dtype)[:n].view(shape)


def _prefix(buffer: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``_with_trash`` carved from the start of a reused flat ``buffer`` (long enough)."""
    return buffer[: math.prod(shape)].view(shape)


def _fill_drops(x: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """Zero the entries ``flat`` of ``x`` (from ``_with_trash`` or ``_prefix``, viewed flat)
    in place; an index ``x.numel()`` (trash) lands on the spare element after ``x``."""
    n = x.numel()
    torch.as_strided(x, (n + 1,), (1,)).index_fill_(0, flat, 0.0)
    return x


def resolve_backend(backend: str, dtype: torch.dtype, D: int, H: int) -> NativeKernels | None:
    """The native kernels ``backend`` asks for, or None for the torch ops (see ``BACKENDS``)."""
    check_choice("backend", backend, BACKENDS)
    if backend == "torch":
        return None
    try:
        return native_kernels(dtype, D, H)
    except DropkitError as e:
        if backend == "native":
            raise
        # "auto": the torch ops compute the same networks, several times slower
        # (benchmarks/uci_kernel.py); say so once, and how to get the fast path
        _log_once(logging.WARNING, f"UCI kernels: torch ops ({e}). A C compiler (cc or $CC) "
                  "or `pip install numba` gives the faster fused kernels.")
        return None


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
    backend: str = "auto",
) -> BatchedMLP:
    """Train K networks in place with Adam; returns ``model``.

    Per network k and minibatch (x_b, y_b) of size b the loss is
    ``mean_b (f_k(x_b) - y_b)^2 + reg_k (|W1_k|^2 + |W2_k|^2)``. Each epoch visits every row
    once in a fresh random order per network, in batches of ``batch_size`` (the last one
    smaller), as Keras ``fit(shuffle=True)`` does. Shapes: ``X (K, N, D)``, ``y (K, N)``,
    ``p (K,)``, ``reg (K,)``. ``backend`` is one of ``BACKENDS``; both consume ``generator``
    identically, so they give the same networks up to rounding.
    """
    K, N, D = X.shape
    dtype = X.dtype
    H = model.w1.shape[2]
    kernels = resolve_backend(backend, dtype, D, H)
    scale = 1.0 / (1.0 - p.to(dtype).view(K, 1, 1))
    two_reg = (2.0 * reg.to(dtype)).view(K, 1, 1)
    D1 = D + 1
    # [W1; b1] trained as one tensor (K, D + 1, H), so the forward needs no concatenation
    w1a = torch.cat([model.w1, model.b1], dim=1)
    row_scale = torch.cat([scale.expand(K, D, 1), scale.new_ones(K, 1, 1)], dim=1)
    row_reg = torch.cat([two_reg.expand(K, D, 1), two_reg.new_zeros(K, 1, 1)], dim=1)
    # the native kernels index flat arrays; contiguous copies are written back at the end
    params = [w1a, model.w2.contiguous(), model.b2.contiguous()]
    # Adam is elementwise, hence per network by construction. The fused kernel (what
    # torch.optim.Adam(fused=True) calls, without its ~0.1 ms of Python per step) does the
    # update in one pass instead of ~7 elementwise ops per tensor.
    m_state = [torch.zeros_like(t) for t in params]
    v_state = [torch.zeros_like(t) for t in params]
    steps = [torch.zeros((), dtype=torch.float32) for _ in params]
    sampler = _DropSampler(p)
    if kernels is not None:
        X_rows, y_rows = X.contiguous().view(K * N, D), y.contiguous().view(K * N)
        scale_k, two_reg_k = scale.reshape(K).contiguous(), two_reg.reshape(K).contiguous()
        work = kernels.train_workspace(batch_size)
    else:
        # rows of every network's data with a constant 1 appended: (x, 1) [W1; b1] = x W1 + b1,
        # so one bmm adds the bias, and the bias gradient comes out of the weight-gradient bmm
        X_rows = torch.cat([X, X.new_ones(K, N, 1)], dim=2).reshape(K * N, D1)
        y_rows = y.reshape(K * N)
    offsets = (torch.arange(K) * N).unsqueeze(1)  # (K, 1): row k of network k is k N + i
    step = 0
    for _ in progress_bar(range(epochs), enabled=progress is not None, desc=progress,
                          leave=False):
        # one exact uniform permutation per network; K small randperm calls are ~4x cheaper
        # than argsort of a (K, N) random matrix, which also has (rare) ties
        perm = torch.stack([torch.randperm(N, generator=generator) for _ in range(K)])
        flat_perm = perm + offsets
        for start in range(0, N, batch_size):
            stop = min(start + batch_size, N)
            b = stop - start
            rows = flat_perm[:, start:stop].contiguous()  # (K, b)
            if kernels is not None:
                keep = kernels.draw_masks(sampler, b, generator)
                if on_step is not None:
                    on_step(step, perm[:, start:stop], *kernels.unpack(keep, (K, b), dtype))
                step += 1
                kernels.train_step(X_rows, y_rows, rows, keep, params, m_state, v_state,
                                   scale_k, two_reg_k, step=step, lr=lr, betas=betas, eps=eps,
                                   work=work)
                continue
            drop1, drop2 = sampler.split(b, D, H, generator)
            if on_step is not None:
                on_step(step, perm[:, start:stop], _keep_mask((K, b, D), drop1, dtype),
                        _keep_mask((K, b, H), drop2, dtype))
            step += 1
            x1 = torch.index_select(X_rows, 0, rows.view(-1),
                                    out=_with_trash((K * b, D1), dtype)).view(K, b, D1)
            yb = y_rows.index_select(0, rows.view(-1)).view(K, b, 1)
            x1 = _fill_drops(x1, _skip_last_column(drop1, D))  # trash -> K b (D + 1)
            grads = _gradients(params[0], params[1], params[2], x1, yb, drop2, scale, row_scale,
                               two_reg, row_reg)
            _adam_update(params, grads, m_state, v_state, steps, lr, betas, eps)
    model.w1.copy_(w1a[:, :D])
    model.b1.copy_(w1a[:, D:])
    model.w2.copy_(params[1])
    model.b2.copy_(params[2])
    return model


def _skip_last_column(flat: torch.Tensor, D: int) -> torch.Tensor:
    """Flat indices into ``(K, b, D)`` -> the same entries of ``(K, b, D + 1)``."""
    return flat + flat.div(D, rounding_mode="floor")


def _gradients(w1a: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, x1: torch.Tensor,
               yb: torch.Tensor, drop2: torch.Tensor, scale: torch.Tensor,
               row_scale: torch.Tensor, two_reg: torch.Tensor,
               row_reg: torch.Tensor) -> list[torch.Tensor]:
    """Hand-written backward pass of the loss of ``train_batched``: gradients of
    ``[W1; b1] (K, D + 1, H)``, ``W2`` and ``b2``.

    ``x1 = (x * m1, 1)`` are the dropped inputs with a constant column, ``drop2`` the dropped
    hidden units; the dropout factor ``s = 1 / (1 - p)`` multiplies the weights:
    ``a = x1 [s W1; b1]``, ``h = relu(a) * m2``, ``out = h (s W2) + b2``. ``row_scale`` is
    ``(s, ..., s, 1)`` and ``row_reg`` ``(2 reg, ..., 2 reg, 0)`` per row of ``[W1; b1]``.
    """
    K, b, _ = x1.shape
    H = w1a.shape[2]
    w2s = w2 * scale
    h = torch.bmm(x1, w1a * row_scale, out=_with_trash((K, b, H), x1.dtype)).relu_()
    h = _fill_drops(h, drop2)
    out = torch.bmm(h, w2s).add_(b2)  # (K, b, 1)
    g_out = out.sub_(yb).mul_(2.0 / b)  # d mean_b (out - y)^2 / d out, (K, b, 1)
    # (K, 1, b) @ (K, b, H) reads h row by row, about twice as fast as h^T @ g_out
    g_w2 = torch.bmm(g_out.transpose(1, 2), h).transpose(1, 2).mul_(scale)
    g_w2 = g_w2.addcmul_(w2, two_reg)
    g_b2 = g_out.sum(1, keepdim=True)
    # d h / d a = m2 * 1[a > 0] = 1[h > 0] = sign(h) (h >= 0), so with w = s W2 (K, H, 1)
    # d/d a_ij = g_out_i w_j gate_ij, and the (K, b, H) product never needs to be formed:
    # [g_W1 / s; g_b1] = ((x1 * g_out)^T gate) * w^T (the last row from the constant column).
    gate = h.sign_()
    g_a1 = torch.bmm((x1 * g_out).transpose(1, 2), gate).mul_(w2s.transpose(1, 2))
    g_w1a = g_a1.mul_(row_scale).addcmul_(w1a, row_reg)
    return [g_w1a, g_w2, g_b2]


def _adam_update(params: list[torch.Tensor], grads: list[torch.Tensor],
                 m_state: list[torch.Tensor], v_state: list[torch.Tensor],
                 steps: list[torch.Tensor], lr: float, betas: tuple[float, float],
                 eps: float) -> None:
    """One ``torch.optim.Adam`` step of every tensor in place.

    Uses the kernel behind ``Adam(fused=True)`` (a private torch op; one call instead of ~28
    elementwise ops) where this torch has it, else the same update written elementwise.
    """
    torch._foreach_add_(steps, 1.0)
    fused = getattr(torch, "_fused_adam_", None)
    if fused is not None:
        fused(params, [g.contiguous() for g in grads],  # it reads grads as contiguous
              m_state, v_state, [], steps, lr=lr, beta1=betas[0], beta2=betas[1],
              weight_decay=0.0, eps=eps, amsgrad=False, maximize=False)
        return
    for param, g, m, v, step in zip(params, grads, m_state, v_state, steps, strict=True):
        t = float(step)
        m.lerp_(g, 1.0 - betas[0])
        v.mul_(betas[1]).addcmul_(g, g, value=1.0 - betas[1])
        denom = (v.sqrt() / math.sqrt(1.0 - betas[1] ** t)).add_(eps)
        param.addcdiv_(m, denom, value=-lr / (1.0 - betas[0] ** t))


_CACHE_ELEMENTS = 1 << 18


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
    backend: str = "auto",
) -> MCStats:
    """T = ``n_samples`` MC dropout passes of every network, reduced with streaming statistics.

    ``X (K, M, D)`` and ``y (K, M)`` are normalised with each network's training statistics;
    ``y_scale (K,)`` is the training std of y and ``tau (K,)`` the precision in original
    units. With ``yhat_t`` the t-th pass in original units, per point

        ll = logsumexp_t(-tau/2 (y - yhat_t)^2) - log T - log(2 pi)/2 + log(tau)/2,

    averaged over points; the logsumexp over T is taken chunk by chunk,
    ``logaddexp(running, logsumexp_chunk)``, by `dropkit.measures.MixtureLogLikelihood` (the
    likelihood code of `dropkit.uncertainty` and the predictor), so memory stays at
    ``chunk_elements`` hidden activations whatever T is (and at most ``2**18`` of them are
    live at once, which keeps them in cache; a chunk of outputs is then up to
    ``chunk_elements / (K M)`` passes).
    RMSE is that of the MC mean ``mean_t yhat_t``. ``backend`` as in ``train_batched``.
    """
    K, M, D = X.shape
    H = model.w1.shape[2]
    dtype = X.dtype
    kernels = resolve_backend(backend, dtype, D, H)
    scale = 1.0 / (1.0 - p.to(dtype).view(K, 1, 1))
    w1a = torch.cat([model.w1 * scale, model.b1], dim=1)  # (K, D + 1, H): bias as a row
    w2s = model.w2 * scale
    tau2 = tau.to(dtype).view(K, 1, 1)
    ys = y_scale.to(dtype).view(K, 1, 1)
    sampler = _DropSampler(p)
    per_pass = K * M * H
    # chunks beyond ~1 MiB of activations fall out of the L2 cache and get slower, so passes
    # are computed s at a time but their outputs (H times smaller) reduced r >= s at a time
    s_max = max(1, min(chunk_elements, _CACHE_ELEMENTS) // per_pass)
    r_max = min(n_samples, max(s_max, chunk_elements // (K * M)))
    outs = torch.empty(K, r_max, M, dtype=dtype)
    # reused buffers: fresh multi-MB tensors per chunk would cost page faults
    if kernels is not None:
        X = X.contiguous()
        w1a, w2s = w1a.contiguous(), w2s.contiguous()
        b2 = model.b2.contiguous()
        out_buf = torch.empty(K * s_max * M, dtype=dtype)
    else:
        X1 = torch.cat([X, X.new_ones(K, M, 1)], dim=2)  # (K, M, D + 1)
        x_buf = torch.empty(K * s_max * M * (D + 1) + 1, dtype=dtype)
        h_buf = torch.empty(K * s_max * M * H + 1, dtype=dtype)
    total = torch.zeros(K, M, dtype=torch.float64)
    ll = MixtureLogLikelihood(dim=1)  # the one mixture log-likelihood, over the T passes
    done = 0
    while done < n_samples:
        r_len = min(r_max, n_samples - done)
        filled = 0
        while filled < r_len:
            s = min(s_max, r_len - filled)
            if kernels is not None:
                out = _prefix(out_buf, (K, s, M))
                kernels.mc_passes(X, kernels.draw_masks(sampler, s * M, generator), w1a, w2s,
                                  b2, out)
                outs[:, filled : filled + s].copy_(out)
                filled += s
                continue
            xr = _prefix(x_buf, (K, s, M, D + 1)).copy_(X1.unsqueeze(1))
            drop1, drop2 = sampler.split(s * M, D, H, generator)
            x1 = _fill_drops(xr.view(K, s * M, D + 1), _skip_last_column(drop1, D))
            h = torch.bmm(x1, w1a, out=_prefix(h_buf, (K, s * M, H))).relu_()
            h = _fill_drops(h, drop2)
            out = torch.bmm(h, w2s).add_(model.b2).view(K, s, M)  # (K, s*M, 1) -> (K, s, M)
            outs[:, filled : filled + s].copy_(out)
            filled += s
        out = outs[:, :r_len]
        total += out.sum(1, dtype=torch.float64)
        resid = (y.unsqueeze(1) - out).mul_(ys)  # original units, (K, r, M)
        ll.add(resid, tau=tau2)  # consumes resid
        done += r_len
    ll_point = ll.compute(tau=tau.double().view(K, 1))  # (K, M)
    mean = total / n_samples
    y64, scale64 = y.double(), y_scale.double()
    rmse = ((y64 - mean).square().mean(1)).sqrt() * scale64
    plain = torch.baddbmm(model.b2, torch.baddbmm(model.b1, X, model.w1).clamp_min_(0.0),
                          model.w2).squeeze(-1)
    rmse_standard = ((y64 - plain.double()).square().mean(1)).sqrt() * scale64
    return MCStats(rmse=rmse, ll=ll_point.mean(1), rmse_standard=rmse_standard)
