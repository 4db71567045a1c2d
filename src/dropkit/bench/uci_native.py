"""Fused C kernels for the batched UCI regressors, compiled on first use with the system's C
compiler and loaded with ``ctypes``.

The torch implementation in ``uci_batched.py`` makes one pass over all K networks per torch op
(about 20 per step), so at the benchmark's sizes it is bound by memory traffic and per-op
overhead. ``uci_native.c`` runs one network's whole step (forward, backward, Adam) while its
parameters and activations are in the L1 cache, and it turns the geometric gaps of the
dropout masks into mask bits. It draws no random numbers: the uniforms and row orders come from
the torch generator in the same order as on the torch path, so both backends train the same
networks up to rounding (``tests/test_bench_uci_native.py``). With OpenMP, the networks are
split between ``torch.get_num_threads()`` threads.

The shared library is built per (dtype, D, H) with ``-O3 -march=native -fopenmp`` (or less,
where the compiler refuses) into
``$DROPKIT_CACHE_DIR`` (default ``~/.cache/dropkit``)/native, keyed by a hash of the source,
the flags, the compiler and the CPU, so a cache shared between machines never loads a library
built for another CPU. That folder is private and every entry is checked against the sha256
recorded when it was built before it is loaded (``uci_native_cache``). ``$CC`` picks the
compiler (split like a shell command).

Without a compiler the same kernels come from numba (``uci_native_numba.py``, the extra
``dropkit[kernels]``): 2.5x slower than C on the UCI benchmark and only 1.1x to 1.2x faster
than the torch ops (``benchmarks/uci_kernel.py``, two runs); which one runs is logged on
``dropkit.bench``
(INFO, or WARNING for a fallback). ``DROPKIT_NATIVE=c`` or ``=numba`` forces one, ``=0`` turns
the native backend off.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Protocol

import torch

from dropkit.bench.uci_native_cache import build_into, private_dir, verified
from dropkit.errors import DropkitError

__all__ = ["NativeKernels"]

_LOG = logging.getLogger("dropkit.bench")

_SOURCE = Path(__file__).with_name("uci_native.c")
_FLAGS = ("-O3", "-fno-math-errno", "-std=gnu11", "-shared", "-fPIC")
# tried in order: this CPU's vector instructions and OpenMP threads over networks, then without
# OpenMP (Apple clang), then plain (a compiler without -march=native)
_EXTRA_FLAGS = (("-march=native", "-fopenmp"), ("-march=native",), ())
_REAL = {torch.float32: "float", torch.float64: "double"}

_i64, _f64, _ptr = ctypes.c_int64, ctypes.c_double, ctypes.c_void_p


class _Sampler(Protocol):
    """What ``draw_masks`` needs of ``uci_batched._DropSampler``."""

    K: int
    inv_log_q: torch.Tensor

    def rounds(self, n: int, generator: torch.Generator,
               consume: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
               ) -> None: ...


def _ptr_of(t: torch.Tensor) -> int:
    # the C side indexes flat arrays: anything else would be read wrongly, not fail
    if not t.is_contiguous() or t.device.type != "cpu":
        raise DropkitError("internal: native kernels need contiguous CPU tensors")
    return t.data_ptr()


class NativeKernels:
    """The compiled kernels of ``uci_native.c`` for one (dtype, D, H), with scratch buffers
    reused across calls (so an instance is not for concurrent use; ``native_kernels`` gives
    a new one each time)."""

    def __init__(self, lib: ctypes.CDLL, dtype: torch.dtype, D: int, H: int) -> None:
        self.dtype, self.D, self.H = dtype, D, H
        self._words = (-(-D // 64), -(-H // 64))  # 64-bit words of mask per row
        self._gaps, self._train, self._mc = lib.drops_from_gaps, lib.train_step, lib.mc_passes
        self._workspace = lib.train_workspace
        # networks are split between torch's intra-op threads, where OpenMP was available
        self.threads = torch.get_num_threads() if lib.has_openmp() else 1
        self._buffers: dict[str, torch.Tensor] = {}

    def _buffer(self, name: str, n: int, dtype: torch.dtype) -> torch.Tensor:
        """A reused scratch tensor of at least n elements (its first n)."""
        buf = self._buffers.get(name)
        if buf is None or buf.numel() < n:
            buf = self._buffers[name] = torch.empty(n, dtype=dtype)
        return buf[:n]

    def draw_masks(self, sampler: _Sampler, rows: int,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Keep-bits of ``rows`` rows per network, ``(K rows words)`` int64 each, drawn by
        ``sampler`` exactly like its ``split(rows, D, H, generator)``."""
        K = sampler.K
        keep = (self._buffer("keep1", K * rows * self._words[0], torch.int64).fill_(-1),
                self._buffer("keep2", K * rows * self._words[1], torch.int64).fill_(-1))
        last = self._buffer("last", K, torch.int64).fill_(-1)
        short = self._buffer("short", K, torch.int64)
        inv = sampler.inv_log_q

        def consume(ks: torch.Tensor, width: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
            n_short = self._drops(ks, width, inv, L, last, rows, keep, short)
            return short[:n_short].clone()

        sampler.rounds(rows * (self.D + self.H), generator, consume)
        return keep

    def _drops(self, ks: torch.Tensor, width: torch.Tensor, inv: torch.Tensor,
               L: torch.Tensor, last: torch.Tensor, rows: int,
               keep: tuple[torch.Tensor, torch.Tensor], short: torch.Tensor) -> int:
        """``drops_from_gaps`` of one round; returns how many networks are still short."""
        return self._gaps(ks.numel(), _ptr_of(ks), _ptr_of(width), _ptr_of(inv), _ptr_of(L),
                          _ptr_of(last), rows, _ptr_of(keep[0]), _ptr_of(keep[1]),
                          _ptr_of(short))

    def unpack(self, keep: tuple[torch.Tensor, torch.Tensor], lead: tuple[int, ...],
               dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The binary masks ``(*lead, D)`` and ``(*lead, H)`` that keep-bits stand for."""
        shifts = torch.arange(64, dtype=torch.int64)
        masks = []
        for bits, words, width in zip(keep, self._words, (self.D, self.H), strict=True):
            b = (bits.view(-1, words, 1) >> shifts) & 1  # (rows, words, 64)
            masks.append(b.view(-1, words * 64)[:, :width].to(dtype).view(*lead, width))
        return masks[0], masks[1]

    def train_workspace(self, b: int) -> torch.Tensor:
        """Scratch for ``train_step`` on batches of up to ``b`` rows."""
        return torch.empty(int(self._workspace(b)) * self.threads, dtype=torch.uint8)

    def train_step(self, X: torch.Tensor, y: torch.Tensor, rows: torch.Tensor,
                   keep: tuple[torch.Tensor, torch.Tensor], params: list[torch.Tensor],
                   m: list[torch.Tensor], v: list[torch.Tensor], scale: torch.Tensor,
                   two_reg: torch.Tensor, *, step: int, lr: float,
                   betas: tuple[float, float], eps: float, work: torch.Tensor) -> None:
        """One Adam step of all networks in place; shapes as in ``uci_native.c``."""
        K, b = rows.shape
        beta1, beta2 = betas
        self._train(K, b, _ptr_of(X), _ptr_of(y), _ptr_of(rows), _ptr_of(keep[0]),
                    _ptr_of(keep[1]), *(_ptr_of(t) for t in params),
                    _ptr_of(m[0]), _ptr_of(v[0]), _ptr_of(m[1]), _ptr_of(v[1]),
                    _ptr_of(m[2]), _ptr_of(v[2]), _ptr_of(scale), _ptr_of(two_reg),
                    beta1, beta2, lr / (1.0 - beta1**step), (1.0 - beta2**step) ** 0.5, eps,
                    _ptr_of(work), self.threads)

    def mc_passes(self, X: torch.Tensor, keep: tuple[torch.Tensor, torch.Tensor],
                  w1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
                  out: torch.Tensor) -> None:
        """``out (K, S, M)`` = S MC passes; ``w1``, ``w2`` already carry the dropout factor;
        ``keep`` from ``draw_masks(sampler, S M, generator)``."""
        K, S, M = out.shape
        self._mc(K, M, S, _ptr_of(X), _ptr_of(keep[0]), _ptr_of(keep[1]), _ptr_of(w1),
                 _ptr_of(w2), _ptr_of(b2), _ptr_of(out), self.threads)


def _cpu_id() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() + platform.machine()


def _cache_dir() -> Path:
    root = os.environ.get("DROPKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dropkit")
    return Path(root) / "native"


_LOCK = threading.Lock()


@cache
def _library(dtype: torch.dtype, D: int, H: int) -> ctypes.CDLL | str:
    """The loaded library, or why there is none."""
    with _LOCK:
        try:
            lib = ctypes.CDLL(str(_build(dtype, D, H)))
        except (DropkitError, OSError) as e:
            return str(e)
    # the C signatures (uci_native.c), so ctypes converts every argument
    for name, restype, argtypes in (
        ("drops_from_gaps", _i64, [_i64] + [_ptr] * 5 + [_i64] + [_ptr] * 3),
        ("train_step", None, [_i64, _i64] + [_ptr] * 16 + [_f64] * 5 + [_ptr, _i64]),
        ("mc_passes", None, [_i64, _i64, _i64] + [_ptr] * 7 + [_i64]),
        ("train_workspace", _i64, [_i64]),
        ("has_openmp", _i64, []),
    ):
        getattr(lib, name).restype = restype
        getattr(lib, name).argtypes = argtypes
    return lib


def _compiler() -> list[str]:
    """``$CC`` split like a shell would (``CC="ccache gcc -O2"``), else cc or gcc."""
    try:
        cc = shlex.split(os.environ.get("CC", ""))
    except ValueError as e:
        raise DropkitError(f"$CC cannot be split into a command: {e}") from None
    if not cc:
        found = shutil.which("cc") or shutil.which("gcc")
        if found is None:
            raise DropkitError(
                "the native UCI kernels need a C compiler (cc or $CC); none found")
        cc = [found]
    return cc


def _build(dtype: torch.dtype, D: int, H: int) -> Path:
    """Path of the shared library for these values, compiled into the private cache folder
    if missing or damaged (``uci_native_cache``), and verified before it is returned."""
    cc = _compiler()
    defines = (f"-DREAL={_REAL[dtype]}", f"-DDIN={D}", f"-DHID={H}")
    try:
        version = subprocess.run([*cc, "--version"], capture_output=True, text=True,
                                 timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise DropkitError(f"the C compiler {shlex.join(cc)!r} does not run: {e}") from None
    flags = [*_FLAGS, *(f for extra in _EXTRA_FLAGS for f in extra)]
    key = hashlib.sha256("\0".join([_SOURCE.read_text(), *flags, *defines, *cc, version,
                                    _cpu_id()]).encode()).hexdigest()[:20]
    folder = private_dir(_cache_dir())
    target = folder / f"uci_native_{key}.so"
    if verified(target):
        return target
    return build_into(target, lambda tmp: _compile(cc, defines, tmp))


def _compile(cc: list[str], defines: tuple[str, ...], out: str) -> None:
    for extra in _EXTRA_FLAGS:
        done = subprocess.run([*cc, *_FLAGS, *extra, *defines, "-o", out, str(_SOURCE),
                               "-lm"], capture_output=True, text=True, timeout=300)
        if done.returncode == 0:
            return
    raise DropkitError(f"compiling the native UCI kernels with {shlex.join(cc)} failed:\n"
                       f"{done.stderr.strip()[-2000:]}")
