"""The native (C) UCI kernels: the same networks as the torch backend, threads, fallback."""

from __future__ import annotations

import ctypes
import shutil

import pytest
import torch

from dropkit.bench.uci_batched import (
    glorot_init,
    mc_evaluate,
    resolve_backend,
    train_batched,
)
from dropkit.bench.uci_config import UCIConfig
from dropkit.bench.uci_kernels import native_kernels
from dropkit.bench.uci_native import _build
from dropkit.errors import DropkitError, DropkitValueError
from tests.native import require_native


def _run(backend: str, *, D: int, H: int, dtype: torch.dtype, threads: int = 1):
    """Train and MC-evaluate a batch of 6 networks with mixed rates; returns the model, the
    MC statistics and every step's (minibatch, masks)."""
    K, N, M = 6, 150, 23
    g = torch.Generator().manual_seed(0)
    X = torch.randn(K, N, D, generator=g, dtype=dtype)
    y = torch.randn(K, N, generator=g, dtype=dtype)
    p = torch.tensor([0.0, 0.005, 0.05, 0.1, 0.3, 0.05], dtype=dtype)
    reg = torch.tensor([1e-3, 0.0, 1e-2, 1e-4, 1e-3, 5e-2], dtype=dtype)
    model = glorot_init(K, D, H, generator=torch.Generator().manual_seed(1), dtype=dtype)
    steps: list[tuple[torch.Tensor, ...]] = []
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        train_batched(model, X, y, p, reg, epochs=4, batch_size=64, lr=1e-2,
                      generator=torch.Generator().manual_seed(2), backend=backend,
                      on_step=lambda step, idx, m1, m2: steps.append((idx, m1, m2)))
        stats = mc_evaluate(model, X[:, :M], y[:, :M], p, y_scale=torch.full((K,), 2.0),
                            tau=torch.full((K,), 0.5), n_samples=50,
                            generator=torch.Generator().manual_seed(3), chunk_elements=1 << 12,
                            backend=backend)
    finally:
        torch.set_num_threads(old)
    return model, stats, steps


@pytest.mark.parametrize(("D", "H"), [(13, 50), (70, 7), (1, 65), (3, 130)])
def test_native_backend_trains_the_same_networks_as_torch_ops(D: int, H: int) -> None:
    """float64: identical minibatches and masks (the same draws of the generator), parameters
    and MC statistics equal to 1e-10; masks wider than 64 bits (D = 70, H = 65, 130) and
    hidden sizes that are not a multiple of the vector width included."""
    require_native()
    a_model, a_stats, a_steps = _run("torch", D=D, H=H, dtype=torch.float64)
    b_model, b_stats, b_steps = _run("native", D=D, H=H, dtype=torch.float64)
    assert len(a_steps) == len(b_steps) == 4 * 3
    for sa, sb in zip(a_steps, b_steps, strict=True):
        for ta, tb in zip(sa, sb, strict=True):
            assert torch.equal(ta, tb)
    for name in ("w1", "b1", "w2", "b2"):
        torch.testing.assert_close(getattr(b_model, name), getattr(a_model, name),
                                   rtol=1e-10, atol=1e-12)
    for name in ("rmse", "ll", "rmse_standard"):
        torch.testing.assert_close(getattr(b_stats, name), getattr(a_stats, name),
                                   rtol=1e-10, atol=1e-12)


def test_native_float32_agrees_and_threads_change_nothing() -> None:
    """float32: the same masks, parameters within float32 rounding (Adam turns rounding of
    near-zero gradients into steps of up to lr, so the tolerance is a few lr), MC statistics
    to 1e-4; two threads give bitwise the result of one (networks never share work)."""
    require_native()
    a_model, a_stats, a_steps = _run("torch", D=13, H=50, dtype=torch.float32)
    b_model, b_stats, b_steps = _run("native", D=13, H=50, dtype=torch.float32)
    c_model, c_stats, _ = _run("native", D=13, H=50, dtype=torch.float32, threads=2)
    assert all(torch.equal(x, z) for sa, sb in zip(a_steps, b_steps, strict=True)
               for x, z in zip(sa, sb, strict=True))
    for name in ("w1", "b1", "w2", "b2"):
        torch.testing.assert_close(getattr(b_model, name), getattr(a_model, name),
                                   rtol=0, atol=5e-2 * 1e-2 * 4)
        assert torch.equal(getattr(c_model, name), getattr(b_model, name))
    torch.testing.assert_close(b_stats.rmse, a_stats.rmse, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(b_stats.ll, a_stats.ll, rtol=1e-4, atol=1e-5)
    assert torch.equal(c_stats.ll, b_stats.ll)


def test_auto_falls_back_to_torch_ops_and_native_says_why(monkeypatch) -> None:
    monkeypatch.setenv("DROPKIT_NATIVE", "0")
    assert resolve_backend("auto", torch.float32, 4, 8) is None
    assert resolve_backend("torch", torch.float32, 4, 8) is None
    with pytest.raises(DropkitError, match="turned off"):
        resolve_backend("native", torch.float32, 4, 8)
    with pytest.raises(DropkitError, match="float32 and float64"):
        monkeypatch.delenv("DROPKIT_NATIVE")
        native_kernels(torch.float16, 4, 8)
    X, y = torch.randn(2, 10, 4), torch.randn(2, 10)
    model = glorot_init(2, 4, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(DropkitValueError, match="`backend`.*'auto', 'native', 'torch'"):
        train_batched(model, X, y, torch.full((2,), 0.1), torch.zeros(2), epochs=1,
                      generator=torch.Generator(), backend="gpu")
    with pytest.raises(DropkitValueError, match="`backend`"):
        UCIConfig(backend="cuda")


def test_a_failing_compiler_gives_its_error(monkeypatch, tmp_path) -> None:
    """A compiler that fails (here: `false`) is reported with what it printed; no half-built
    library is left in the cache."""
    monkeypatch.setenv("CC", "false")
    monkeypatch.setenv("DROPKIT_CACHE_DIR", str(tmp_path))
    with pytest.raises(DropkitError, match="compiling the native UCI kernels with false failed"):
        _build(torch.float32, 5, 9)
    assert not list((tmp_path / "native").glob("*.so"))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(DropkitError, match="does not run"):
        _build(torch.float32, 5, 9)


def test_the_library_is_built_once_per_shape_into_the_cache(monkeypatch, tmp_path) -> None:
    require_native()
    monkeypatch.setenv("DROPKIT_CACHE_DIR", str(tmp_path))
    first = _build(torch.float64, 6, 11)
    mtime = first.stat().st_mtime_ns
    assert _build(torch.float64, 6, 11) == first and first.stat().st_mtime_ns == mtime
    assert _build(torch.float64, 6, 12) != first


def test_a_compiler_without_openmp_gives_a_one_thread_library(monkeypatch, tmp_path) -> None:
    """Apple clang refuses -fopenmp: the build retries without it, and the kernels run their
    loops on one thread (same results)."""
    require_native()
    real = shutil.which("cc") or shutil.which("gcc")
    fake = tmp_path / "cc-no-openmp"
    fake.write_text(f'#!/bin/sh\ncase "$*" in *-fopenmp*) exit 1;; esac\nexec {real} "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("CC", str(fake))
    monkeypatch.setenv("DROPKIT_CACHE_DIR", str(tmp_path / "cache"))
    lib = ctypes.CDLL(str(_build(torch.float32, 4, 9)))
    assert lib.has_openmp() == 0
