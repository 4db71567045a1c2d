"""Which UCI kernels run: the C library, its numba twin, or none (then torch ops).

Kept apart from both implementations (``uci_native.py``, ``uci_native_numba.py``), which this
module is the only one to import together: the numba twin subclasses the C wrapper.
"""

from __future__ import annotations

import logging
import os
from functools import cache

import torch

from dropkit.bench import uci_native
from dropkit.bench.uci_native import NativeKernels
from dropkit.errors import DropkitError

__all__ = ["PREFERENCE", "native_kernels"]

_LOG = logging.getLogger("dropkit.bench")


def native_kernels(dtype: torch.dtype, D: int, H: int) -> NativeKernels:
    """Fresh kernels (own scratch buffers) for ``dtype`` and a D -> H -> 1 network.

    ``$DROPKIT_NATIVE`` picks them: ``c`` the C library (compiled on the first call of the
    process for these values, or taken from the cache folder), ``numba`` the numba twin
    (``uci_native_numba.py``, needs ``pip install numba``, no C compiler), unset or ``1`` the
    first of ``PREFERENCE`` that can be had (the other logged as a fallback on the logger
    ``dropkit.bench``), ``0`` none. Raises ``DropkitError`` (saying why for each) when none can
    be had: turned off, an unsupported dtype, no C compiler or a failed compilation (which is
    remembered for the rest of the process, so ``backend="auto"`` does not retry it), no numba.
    """
    choice = os.environ.get("DROPKIT_NATIVE", "1").strip().lower()
    if choice == "0":
        raise DropkitError("the native UCI kernels are turned off (DROPKIT_NATIVE=0)")
    if choice not in ("", "1", *PREFERENCE):
        raise DropkitError(f"DROPKIT_NATIVE={choice!r} is not one of 0, 1, c, numba")
    if dtype not in uci_native._REAL:
        raise DropkitError(f"the native UCI kernels support float32 and float64, not {dtype}")
    order = PREFERENCE if choice in ("", "1") else (choice,)
    failed: list[str] = []
    for impl in order:
        kernels = _MAKERS[impl](dtype, int(D), int(H))
        if isinstance(kernels, NativeKernels):
            if failed:
                _log_once(logging.WARNING, f"UCI kernels: {impl} (fallback: {'; '.join(failed)})")
            else:
                _log_once(logging.INFO, f"UCI kernels: {impl}")
            return kernels
        failed.append(f"{impl}: {kernels}")
    raise DropkitError("no native UCI kernels: " + "; ".join(failed))


@cache
def _log_once(level: int, message: str) -> None:
    """Each distinct choice once per process (the kernels are resolved at every call)."""
    _LOG.log(level, message)


def _c_kernels(dtype: torch.dtype, D: int, H: int) -> NativeKernels | str:
    lib = uci_native._library(dtype, D, H)
    return lib if isinstance(lib, str) else NativeKernels(lib, dtype, D, H)


def _numba_kernels(dtype: torch.dtype, D: int, H: int) -> NativeKernels | str:
    try:
        from dropkit.bench.uci_native_numba import NumbaKernels
    except ImportError as e:
        return f"numba is not installed ({e.msg}; pip install numba)"
    return NumbaKernels(dtype, D, H)


#: the implementations ``DROPKIT_NATIVE=1`` tries, fastest first (benchmarks/uci_kernel.py:
#: full bostonHousing protocol, one thread, C 2.6 min, numba 6.6 min, torch ops 7.6 min)
PREFERENCE = ("c", "numba")
_MAKERS = {"c": _c_kernels, "numba": _numba_kernels}
