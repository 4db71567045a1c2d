"""The fused UCI kernels of ``uci_native.c`` written for numba: no system C compiler needed.

The same three kernels with the same arguments (``drops_from_gaps``, ``train_step``,
``mc_passes``; see ``uci_native.c`` for what each computes) compiled by numba's bundled LLVM
on first use, so a machine without ``cc`` (Windows, macOS without the command-line tools) still
gets one network's whole step per pass instead of the torch ops. Unlike the C file, D and H are
run-time values and the hidden layer is plain loops, not explicit vectors. Numba caches the
machine code beside this file (or in ``$NUMBA_CACHE_DIR``). Networks are split between
``torch.get_num_threads()`` numba threads (``prange``).

Arithmetic stays in the dtype of the data: every scalar is passed in that dtype, as the C code
casts to ``REAL``, because numba widens float32 mixed with a Python int or float to float64.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from numba import njit, prange

from dropkit.bench.uci_native import NativeKernels
from dropkit.errors import DropkitError

__all__ = ["NumbaKernels"]

_ONE = np.uint64(1)
# reassociation lets LLVM vectorise the sums over hidden units (the C code sums in vector
# lanes too) and contraction gives fused multiply-adds, as gcc does by default; no flag that
# assumes finite values
_FAST = {"reassoc", "contract"}


@njit(cache=True)
def _drops_from_gaps(ks, width, inv_log_q, L, last, rows, D, H, keep1, keep2, nw1, nw2,
                     short_ks):  # pragma: no cover - compiled
    n_in = rows * D
    n = rows * (D + H)
    n_short = 0
    off = 0
    for t in range(ks.shape[0]):
        k = ks[t]
        w = width[k]
        inv = inv_log_q[k]
        pos = last[k]
        c = 0
        while c < w and pos < n:
            e = L[off + c] * inv
            if e > n:
                e = float(n)  # gaps past the end are all alike: no overflow
            pos += np.int64(e) + 1
            if pos < n_in:
                row = pos // D
                col = pos - row * D
                keep1[(k * rows + row) * nw1 + col // 64] &= ~(_ONE << np.uint64(col % 64))
            elif pos < n:
                q = pos - n_in
                row = q // H
                col = q - row * H
                keep2[(k * rows + row) * nw2 + col // 64] &= ~(_ONE << np.uint64(col % 64))
            c += 1
        off += w
        last[k] = pos
        if pos < n:
            short_ks[n_short] = k
            n_short += 1
    return n_short


@njit(inline="always")
def _unpack(bits, row, nw, mask, one):  # pragma: no cover - compiled
    """Row ``row``'s keep-bits as 0/1 in ``mask`` (shifts, not // and %: numba's signed
    floor division branches and keeps the loops from vectorising)."""
    base = row * nw
    for c in range(mask.shape[0]):
        bit = (bits[base + (c >> 6)] >> np.uint64(c & 63)) & _ONE
        mask[c] = one if bit else one - one


@njit(inline="always")
def _adam(p, m, v, g, beta1, beta2, step_size, bc2_sqrt, eps, one):  # pragma: no cover
    w1, w2 = one - beta1, one - beta2
    for i in range(p.shape[0]):
        mi = m[i] + w1 * (g[i] - m[i])
        vi = v[i] * beta2 + g[i] * g[i] * w2
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (np.sqrt(vi) / bc2_sqrt + eps)


@njit(cache=True, fastmath=_FAST)
def _train_network(k, X, y, rows, keep1, keep2, nw1, nw2, w1, w2, b2, m1, v1, m2, v2, mb, vb,
                   scale, two_reg, beta1, beta2, step_size, bc2_sqrt, eps, two_over_b,
                   one):  # pragma: no cover - compiled
    """Network k's step (the body of the loop over networks of ``train_step`` in C)."""
    b = rows.shape[1]
    D = X.shape[1]
    H = w2.shape[1]
    zero = one - one
    s = scale[k]
    r2 = two_reg[k]
    W = w1[k]  # (D + 1, H): [W1; b1]
    w = w2[k]
    XM = np.empty((b, D), X.dtype)  # s x m1, the dropped and scaled inputs
    GA = np.empty((b, H), X.dtype)  # dL/da per row
    acc = np.empty(H, X.dtype)
    mk1 = np.empty(D, X.dtype)
    mk2 = np.empty(H, X.dtype)
    g2 = np.zeros(H, X.dtype)
    gb = zero
    for i in range(b):
        r = rows[k, i]
        kr = k * b + i
        _unpack(keep1, kr, nw1, mk1, one)
        _unpack(keep2, kr, nw2, mk2, one)
        for h in range(H):
            acc[h] = W[D, h]
        for j in range(D):
            xj = X[r, j] * s * mk1[j]
            XM[i, j] = xj
            for h in range(H):
                acc[h] += xj * W[j, h]
        ov = zero
        for h in range(H):
            a = acc[h] * mk2[h]  # relu of the kept units; a dropped one gives +-0 -> 0
            a = a if a > zero else zero
            acc[h] = a
            ov += a * w[h]
        g = two_over_b * (ov * s + b2[k] - y[r])
        gb += g
        for h in range(H):
            g2[h] += g * acc[h]
            GA[i, h] = (g * s) * w[h] if acc[h] > zero else zero
    grad = np.zeros((D + 1, H), X.dtype)
    for i in range(b):
        for j in range(D):
            xj = XM[i, j]
            for h in range(H):
                grad[j, h] += xj * GA[i, h]
        for h in range(H):
            grad[D, h] += GA[i, h]
    for j in range(D):
        for h in range(H):
            grad[j, h] += r2 * W[j, h]
    gw = np.empty(H, X.dtype)
    for h in range(H):
        gw[h] = g2[h] * s + r2 * w[h]
    gbias = np.empty(1, X.dtype)
    gbias[0] = gb
    _adam(W.reshape(-1), m1[k].reshape(-1), v1[k].reshape(-1), grad.reshape(-1), beta1,
          beta2, step_size, bc2_sqrt, eps, one)
    _adam(w, m2[k], v2[k], gw, beta1, beta2, step_size, bc2_sqrt, eps, one)
    _adam(b2[k : k + 1], mb[k : k + 1], vb[k : k + 1], gbias, beta1, beta2, step_size,
          bc2_sqrt, eps, one)


@njit(cache=True, fastmath=_FAST)
def _mc_network(k, X, keep1, keep2, nw1, nw2, w1, w2, b2, out):  # pragma: no cover - compiled
    """Network k's S passes (the body of the loop over networks of ``mc_passes`` in C)."""
    _, S, M = out.shape
    D = X.shape[2]
    H = w2.shape[1]
    zero = b2[0] - b2[0]
    one = zero + b2.dtype.type(1)
    W = w1[k]
    w = w2[k]
    acc = np.empty(H, X.dtype)
    mk1 = np.empty(D, X.dtype)
    mk2 = np.empty(H, X.dtype)
    for t in range(S):
        for i in range(M):
            row = (k * S + t) * M + i
            _unpack(keep1, row, nw1, mk1, one)
            _unpack(keep2, row, nw2, mk2, one)
            for h in range(H):
                acc[h] = W[D, h]
            for j in range(D):
                xj = X[k, i, j] * mk1[j]
                for h in range(H):
                    acc[h] += xj * W[j, h]
            ov = zero
            for h in range(H):
                a = acc[h] * mk2[h]
                ov += a * w[h] if a > zero else zero
            out[k, t, i] = ov + b2[k]


# The loops over networks: serial, or split between numba threads. Two functions, so that
# one thread (the benchmark's default) never pays for compiling the parallel loop: first use of
# the float64 kernels took 10 s of CPU serial and 17 s more for the parallel loop (numba 0.68).
@njit(cache=True)
def _train_serial(K, *args):  # pragma: no cover - compiled
    for k in range(K):
        _train_network(k, *args)


@njit(cache=True, parallel=True)
def _train_parallel(K, *args):  # pragma: no cover - compiled
    for k in prange(K):
        _train_network(k, *args)


@njit(cache=True)
def _mc_serial(K, *args):  # pragma: no cover - compiled
    for k in range(K):
        _mc_network(k, *args)


@njit(cache=True, parallel=True)
def _mc_parallel(K, *args):  # pragma: no cover - compiled
    for k in prange(K):
        _mc_network(k, *args)


def _np(t: torch.Tensor) -> np.ndarray:
    # the kernels write through these arrays: a reshape of a non-contiguous one would copy
    # and lose the writes, so refuse it like the C path's _ptr_of
    if not t.is_contiguous() or t.device.type != "cpu":
        raise DropkitError("internal: numba kernels need contiguous CPU tensors")
    return t.numpy()


def _bits(t: torch.Tensor) -> np.ndarray:
    return _np(t).view(np.uint64)


class NumbaKernels(NativeKernels):
    """``NativeKernels`` with the numba kernels in place of the compiled C library."""

    def __init__(self, dtype: torch.dtype, D: int, H: int) -> None:
        self.dtype, self.D, self.H = dtype, D, H
        self._words = (-(-D // 64), -(-H // 64))
        self.threads = torch.get_num_threads()
        self._real = np.float32 if dtype == torch.float32 else np.float64
        self._buffers: dict[str, torch.Tensor] = {}

    def _drops(self, ks: torch.Tensor, width: torch.Tensor, inv: torch.Tensor,
               L: torch.Tensor, last: torch.Tensor, rows: int,
               keep: tuple[torch.Tensor, torch.Tensor], short: torch.Tensor) -> int:
        return int(_drops_from_gaps(_np(ks), _np(width), _np(inv), _np(L), _np(last), rows,
                                    self.D, self.H, _bits(keep[0]), _bits(keep[1]),
                                    *self._words, _np(short)))

    def train_workspace(self, b: int) -> torch.Tensor:
        return torch.empty(0, dtype=torch.uint8)  # numba allocates per network

    def train_step(self, X: torch.Tensor, y: torch.Tensor, rows: torch.Tensor,
                   keep: tuple[torch.Tensor, torch.Tensor], params: list[torch.Tensor],
                   m: list[torch.Tensor], v: list[torch.Tensor], scale: torch.Tensor,
                   two_reg: torch.Tensor, *, step: int, lr: float,
                   betas: tuple[float, float], eps: float, work: torch.Tensor) -> None:
        K, b = rows.shape
        beta1, beta2 = betas
        R = self._real
        w1, w2, b2 = params
        threads = min(self.threads, numba.config.NUMBA_NUM_THREADS, K)  # type: ignore[attr-defined]
        if threads > 1:
            numba.set_num_threads(threads)
        run = _train_parallel if threads > 1 else _train_serial
        D1, H = self.D + 1, self.H
        run(K, _np(X), _np(y), _np(rows), _bits(keep[0]), _bits(keep[1]), *self._words,
            _np(w1).reshape(K, D1, H), _np(w2).reshape(K, H), _np(b2).reshape(K),
            _np(m[0]).reshape(K, D1, H), _np(v[0]).reshape(K, D1, H), _np(m[1]).reshape(K, H),
            _np(v[1]).reshape(K, H), _np(m[2]).reshape(K), _np(v[2]).reshape(K), _np(scale),
            _np(two_reg), R(beta1), R(beta2), R(lr / (1.0 - beta1**step)),
            R((1.0 - beta2**step) ** 0.5), R(eps), R(2.0) / R(b), R(1.0))

    def mc_passes(self, X: torch.Tensor, keep: tuple[torch.Tensor, torch.Tensor],
                  w1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
                  out: torch.Tensor) -> None:
        K = out.shape[0]
        threads = min(self.threads, numba.config.NUMBA_NUM_THREADS, K)  # type: ignore[attr-defined]
        if threads > 1:
            numba.set_num_threads(threads)
        run = _mc_parallel if threads > 1 else _mc_serial
        run(K, _np(X), _bits(keep[0]), _bits(keep[1]), *self._words,
            _np(w1).reshape(K, self.D + 1, self.H), _np(w2).reshape(K, self.H),
            _np(b2).reshape(K), _np(out))
